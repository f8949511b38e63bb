using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using FluentAssertions;
using IlgpuOct.Nn.Data;
using Xunit;

namespace IlgpuOct.Tests.Data;

public sealed class PngTests
{
    [Fact]
    public void Crc32_matches_the_standard_check_value()
    {
        Crc32.Compute("123456789"u8).Should().Be(0xCBF43926u);
        Crc32.Append(Crc32.Compute("1234"u8), "56789"u8).Should().Be(0xCBF43926u);
    }

    [Fact]
    public void Png_has_valid_chunks_and_the_pixels_come_back()
    {
        const int w = 5, h = 3;
        var pixels = Enumerable.Range(0, w * h).Select(i => (byte)(i * 17)).ToArray();
        byte[] png = Png.Encode(pixels, w, h, 1);
        png[..8].Should().Equal(0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A);
        int offset = 8;
        var chunks = new List<string>();
        using var idat = new MemoryStream();
        while (offset < png.Length)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(offset));
            string type = Encoding.ASCII.GetString(png, offset + 4, 4);
            var data = png.AsSpan(offset + 8, length);
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(offset + 8 + length));
            crc.Should().Be(Crc32.Append(Crc32.Compute(Encoding.ASCII.GetBytes(type)), data), $"CRC of {type}");
            if (type == "IHDR")
            {
                BinaryPrimitives.ReadInt32BigEndian(data).Should().Be(w);
                BinaryPrimitives.ReadInt32BigEndian(data[4..]).Should().Be(h);
                data[8].Should().Be(8);
                data[9].Should().Be(0);
            }
            if (type == "IDAT")
            {
                idat.Write(data);
            }
            chunks.Add(type);
            offset += 12 + length;
        }
        chunks.Should().Equal("IHDR", "IDAT", "IEND");
        idat.Position = 0;
        using var zlib = new ZLibStream(idat, CompressionMode.Decompress);
        var raw = new byte[h * (w + 1)];
        zlib.ReadExactly(raw);
        for (int y = 0; y < h; y++)
        {
            raw[y * (w + 1)].Should().Be(0, "filter type none");
            raw.AsSpan(y * (w + 1) + 1, w).ToArray().Should().Equal(pixels.AsSpan(y * w, w).ToArray());
        }
    }

    [Fact]
    public void Contact_sheet_puts_each_class_on_its_own_row()
    {
        using var folder = new TempFolder();
        // Class c images are filled with 50 * (c + 1) so rows are recognisable.
        var labels = new[] { 1, 0, 1, 0, 0 };
        var images = labels.SelectMany(l => Enumerable.Repeat((byte)(50 * (l + 1)), 4)).ToArray();
        string path = folder.File("sheet.ioct");
        DatasetFile.Write(path, new DatasetContent(1, 2, 2, ["a", "b"], "t", [new SplitData("train", images, labels)]));
        using var file = DatasetFile.Open(path);
        var (pixels, width, height, channels) = ContactSheet.Build(file.Split("train"), perClass: 2, scale: 1, gap: 1);
        (width, height, channels).Should().Be((7, 7, 1));
        pixels[1 * width + 1].Should().Be(50); // row 0 (class a), column 0
        pixels[1 * width + 4].Should().Be(50); // row 0, column 1
        pixels[4 * width + 1].Should().Be(100); // row 1 (class b)
        pixels[0].Should().Be(0); // gap
    }
}

using System.Runtime.InteropServices;

namespace IlgpuOct.Nn.Data;

/// <summary>
/// JPEG decoding (and encoding, for tests and tools) through libjpeg-turbo's TurboJPEG API.
/// Needs libturbojpeg.so.0 (Debian/Ubuntu package libturbojpeg0).
/// </summary>
public static partial class TurboJpeg
{
    private const string Library = "libturbojpeg.so.0";
    private const int PixelFormatGray = 6; // TJPF_GRAY
    private const int SubsamplingGray = 3; // TJSAMP_GRAY
    private const int FlagStopOnWarning = 8192; // TJFLAG_STOPONWARNING: a damaged file is an error, not a half-decoded image
    private const int FlagAccurateDct = 4096; // TJFLAG_ACCURATEDCT

    public const string InstallHint = "install libturbojpeg0 (apt-get install libturbojpeg0)";

    private static readonly Lazy<string?> LoadProblem = new(() =>
    {
        if (NativeLibrary.TryLoad(Library, typeof(TurboJpeg).Assembly, null, out var handle))
        {
            NativeLibrary.Free(handle);
            return null;
        }
        return $"libjpeg-turbo ({Library}) could not be loaded: {InstallHint}.";
    });

    /// <summary>Whether libturbojpeg can be loaded on this machine.</summary>
    public static bool IsAvailable => LoadProblem.Value is null;

    /// <summary>Throws <see cref="DllNotFoundException"/> with the install hint when the library is missing.</summary>
    public static void EnsureAvailable()
    {
        if (LoadProblem.Value is { } problem)
        {
            throw new DllNotFoundException(problem);
        }
    }

    /// <summary>Decodes a JPEG (gray or colour) to 8-bit gray (H, W). Throws <see cref="InvalidDataException"/> on a damaged file.</summary>
    public static unsafe byte[] DecodeGray(ReadOnlySpan<byte> jpeg, out int width, out int height)
    {
        EnsureAvailable();
        if (jpeg.IsEmpty)
        {
            throw new InvalidDataException("the JPEG data is empty");
        }
        nint handle = tjInitDecompress();
        if (handle == 0)
        {
            throw new InvalidOperationException("tjInitDecompress failed: " + ErrorText(0));
        }
        try
        {
            fixed (byte* source = jpeg)
            {
                int w, h, subsampling, colorspace;
                if (tjDecompressHeader3(handle, source, new CULong((nuint)jpeg.Length), &w, &h, &subsampling, &colorspace) != 0)
                {
                    throw new InvalidDataException("not a readable JPEG: " + ErrorText(handle));
                }
                if (w <= 0 || h <= 0 || (long)w * h > 1L << 26)
                {
                    throw new InvalidDataException($"JPEG declares an unusable size {w}x{h}");
                }
                var pixels = new byte[w * h];
                fixed (byte* target = pixels)
                {
                    if (tjDecompress2(handle, source, new CULong((nuint)jpeg.Length), target, w, w, h, PixelFormatGray, FlagStopOnWarning | FlagAccurateDct) != 0)
                    {
                        throw new InvalidDataException("damaged JPEG: " + ErrorText(handle));
                    }
                }
                width = w;
                height = h;
                return pixels;
            }
        }
        finally
        {
            _ = tjDestroy(handle);
        }
    }

    /// <summary>Encodes 8-bit gray pixels (H, W) as a baseline grayscale JPEG of the given quality (1..100).</summary>
    public static unsafe byte[] EncodeGray(ReadOnlySpan<byte> pixels, int width, int height, int quality = 90)
    {
        EnsureAvailable();
        if (width <= 0 || height <= 0 || pixels.Length != width * height)
        {
            throw new ArgumentException($"Expected {width}x{height} = {(long)width * height} gray pixels, got {pixels.Length}.", nameof(pixels));
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(quality, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(quality, 100);
        nint handle = tjInitCompress();
        if (handle == 0)
        {
            throw new InvalidOperationException("tjInitCompress failed: " + ErrorText(0));
        }
        byte* output = null;
        try
        {
            CULong size = default;
            fixed (byte* source = pixels)
            {
                if (tjCompress2(handle, source, width, width, height, PixelFormatGray, &output, &size, SubsamplingGray, quality, FlagAccurateDct) != 0)
                {
                    throw new InvalidOperationException("JPEG encoding failed: " + ErrorText(handle));
                }
            }
            return new ReadOnlySpan<byte>(output, checked((int)size.Value)).ToArray();
        }
        finally
        {
            if (output != null)
            {
                tjFree(output);
            }
            _ = tjDestroy(handle);
        }
    }

    private static string ErrorText(nint handle)
    {
        nint text = tjGetErrorStr2(handle);
        return text == 0 ? "unknown error" : Marshal.PtrToStringUTF8(text) ?? "unknown error";
    }

    [LibraryImport(Library)]
    private static partial nint tjInitDecompress();

    [LibraryImport(Library)]
    private static unsafe partial int tjDecompressHeader3(nint handle, byte* jpegBuf, CULong jpegSize, int* width, int* height, int* jpegSubsamp, int* jpegColorspace);

    [LibraryImport(Library)]
    private static unsafe partial int tjDecompress2(nint handle, byte* jpegBuf, CULong jpegSize, byte* dstBuf, int width, int pitch, int height, int pixelFormat, int flags);

    [LibraryImport(Library)]
    private static partial nint tjInitCompress();

    [LibraryImport(Library)]
    private static unsafe partial int tjCompress2(nint handle, byte* srcBuf, int width, int pitch, int height, int pixelFormat, byte** jpegBuf, CULong* jpegSize, int jpegSubsamp, int jpegQual, int flags);

    [LibraryImport(Library)]
    private static unsafe partial void tjFree(byte* buffer);

    [LibraryImport(Library)]
    private static partial int tjDestroy(nint handle);

    [LibraryImport(Library)]
    private static partial nint tjGetErrorStr2(nint handle);
}

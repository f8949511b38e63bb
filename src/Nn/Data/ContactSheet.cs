namespace IlgpuOct.Nn.Data;

/// <summary>A grid of images from one split: one row per class (in class order), up to <c>perClass</c> columns.</summary>
public static class ContactSheet
{
    /// <summary>Largest sheet written (bytes of pixels); PNG viewers give up long before.</summary>
    public const long MaxPixels = 1L << 28;

    /// <summary>Returns the sheet as gray (channels 1) or RGB pixels (H, W, C) and its size; empty cells stay black.</summary>
    public static (byte[] Pixels, int Width, int Height, int Channels) Build(DatasetSplit split, int perClass, int scale = 1, int gap = 2)
    {
        ArgumentNullException.ThrowIfNull(split);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(perClass);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(scale);
        int classes = split.ClassNames.Count;
        long sheetWidth = (long)perClass * ((long)split.Width * scale + gap) + gap;
        long sheetHeight = (long)classes * ((long)split.Height * scale + gap) + gap;
        if (sheetWidth * sheetHeight * split.Channels > MaxPixels)
        {
            throw new ArgumentException($"The contact sheet would be {sheetWidth}x{sheetHeight} pixels, more than {MaxPixels} bytes; lower --per-class or --scale.");
        }
        int cellW = split.Width * scale, cellH = split.Height * scale, channels = split.Channels;
        int width = (int)sheetWidth;
        int height = (int)sheetHeight;
        var pixels = new byte[(long)width * height * channels];
        var filled = new int[classes];
        for (int i = 0; i < split.Count; i++)
        {
            int label = split.Label(i);
            if (filled[label] >= perClass)
            {
                continue;
            }
            int column = filled[label]++;
            var image = split.Image(i); // (C, H, W)
            int x0 = gap + column * (cellW + gap), y0 = gap + label * (cellH + gap);
            for (int y = 0; y < cellH; y++)
            {
                for (int x = 0; x < cellW; x++)
                {
                    for (int c = 0; c < channels; c++)
                    {
                        pixels[((long)(y0 + y) * width + x0 + x) * channels + c] = image[(c * split.Height + y / scale) * split.Width + x / scale];
                    }
                }
            }
            if (filled.All(f => f >= perClass))
            {
                break;
            }
        }
        return (pixels, width, height, channels);
    }
}

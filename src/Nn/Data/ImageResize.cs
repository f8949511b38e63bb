namespace IlgpuOct.Nn.Data;

/// <summary>How <see cref="ImageResize"/> filters.</summary>
public enum ResizeFilter
{
    /// <summary>Exact area averaging when shrinking (each output pixel is the mean of the source area it covers); bilinear when enlarging.</summary>
    Area,

    /// <summary>Bilinear, antialiased when shrinking (triangle filter widened by the scale, as PIL does).</summary>
    Bilinear,
}

/// <summary>Separable resizing and cropping of 8-bit planes (H, W).</summary>
public static class ImageResize
{
    /// <summary>Resizes one plane <paramref name="source"/> (sh, sw) into <paramref name="destination"/> (dh, dw).</summary>
    public static void Resize(ReadOnlySpan<byte> source, int sourceWidth, int sourceHeight, Span<byte> destination, int width, int height, ResizeFilter filter = ResizeFilter.Area)
    {
        if (sourceWidth <= 0 || sourceHeight <= 0 || width <= 0 || height <= 0)
        {
            throw new ArgumentException($"Sizes must be positive (source {sourceWidth}x{sourceHeight}, target {width}x{height}).");
        }
        if (source.Length < sourceWidth * sourceHeight || destination.Length < width * height)
        {
            throw new ArgumentException("Source or destination is smaller than its stated size.");
        }
        if (sourceWidth == width && sourceHeight == height)
        {
            source[..(width * height)].CopyTo(destination);
            return;
        }
        var columns = Weights(sourceWidth, width, filter);
        var rows = Weights(sourceHeight, height, filter);
        var temp = new float[sourceHeight * width]; // (sh, dw)
        for (int y = 0; y < sourceHeight; y++)
        {
            var line = source.Slice(y * sourceWidth, sourceWidth);
            for (int x = 0; x < width; x++)
            {
                var (start, w) = columns[x];
                float sum = 0f;
                for (int k = 0; k < w.Length; k++)
                {
                    sum += w[k] * line[start + k];
                }
                temp[y * width + x] = sum;
            }
        }
        for (int y = 0; y < height; y++)
        {
            var (start, w) = rows[y];
            for (int x = 0; x < width; x++)
            {
                float sum = 0f;
                for (int k = 0; k < w.Length; k++)
                {
                    sum += w[k] * temp[(start + k) * width + x];
                }
                destination[y * width + x] = (byte)Math.Clamp(MathF.Round(sum), 0f, 255f);
            }
        }
    }

    /// <summary>The centered (height, width) window of a plane (sh, sw); odd margins put the extra pixel at the bottom/right.</summary>
    public static void CenterCrop(ReadOnlySpan<byte> source, int sourceWidth, int sourceHeight, Span<byte> destination, int width, int height)
    {
        if (width > sourceWidth || height > sourceHeight || width <= 0 || height <= 0)
        {
            throw new ArgumentException($"Cannot crop {width}x{height} out of {sourceWidth}x{sourceHeight}.");
        }
        int left = (sourceWidth - width) / 2, top = (sourceHeight - height) / 2;
        for (int y = 0; y < height; y++)
        {
            source.Slice((top + y) * sourceWidth + left, width).CopyTo(destination.Slice(y * width, width));
        }
    }

    /// <summary>For each output index: the first source index and the normalised weights of the source pixels it reads.</summary>
    internal static (int Start, float[] Weights)[] Weights(int sourceSize, int size, ResizeFilter filter)
    {
        double scale = (double)sourceSize / size;
        var result = new (int, float[])[size];
        for (int i = 0; i < size; i++)
        {
            double center = (i + 0.5) * scale;
            int start, end;
            double[] w;
            if (filter == ResizeFilter.Area && scale >= 1)
            {
                double lo = center - scale / 2, hi = center + scale / 2;
                start = Math.Max(0, (int)Math.Floor(lo));
                end = Math.Min(sourceSize, (int)Math.Ceiling(hi));
                w = new double[end - start];
                for (int j = start; j < end; j++)
                {
                    w[j - start] = Math.Max(0, Math.Min(hi, j + 1) - Math.Max(lo, j));
                }
            }
            else
            {
                double support = Math.Max(scale, 1);
                start = Math.Max(0, (int)Math.Floor(center - support));
                end = Math.Min(sourceSize, (int)Math.Ceiling(center + support));
                w = new double[end - start];
                for (int j = start; j < end; j++)
                {
                    double t = Math.Abs((j + 0.5 - center) / support);
                    w[j - start] = Math.Max(0, 1 - t);
                }
            }
            double total = w.Sum();
            if (total <= 0)
            {
                // Enlarging past the border: take the nearest pixel.
                start = Math.Clamp((int)center, 0, sourceSize - 1);
                w = [1];
                total = 1;
            }
            // Trim zero weights at the ends so the loops stay short.
            int first = 0, last = w.Length - 1;
            while (first < last && w[first] == 0)
            {
                first++;
            }
            while (last > first && w[last] == 0)
            {
                last--;
            }
            var weights = new float[last - first + 1];
            for (int k = 0; k < weights.Length; k++)
            {
                weights[k] = (float)(w[first + k] / total);
            }
            result[i] = (start + first, weights);
        }
        return result;
    }
}

/// <summary>
/// The image preprocessing of an import: resize so the shorter side is <see cref="ResizeTo"/>,
/// center crop <see cref="CropTo"/> x <see cref="CropTo"/>, resize to <see cref="Resolution"/>
/// (area filter when shrinking), and convert channels. Pixels stay uint8; scaling to [0, 1] and
/// any repeat to 3 channels happen at batch time (<see cref="DatasetSplit.CopyImages"/>).
/// </summary>
public sealed record Preprocess
{
    public Preprocess(int resolution, int? resize = null, int? crop = null, int channels = 1)
    {
        if (resolution is < 1 or > 4096)
        {
            throw new ArgumentOutOfRangeException(nameof(resolution), resolution, "Resolution must be in 1..4096.");
        }
        int cropTo = crop ?? resolution;
        int resizeTo = resize ?? cropTo;
        if (cropTo <= 0 || resizeTo < cropTo)
        {
            throw new ArgumentException($"The shorter side after resizing ({resizeTo}) must be at least the crop ({cropTo}).");
        }
        if (channels is not (1 or 3))
        {
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "Channels must be 1 or 3.");
        }
        Resolution = resolution;
        CropTo = cropTo;
        ResizeTo = resizeTo;
        Channels = channels;
    }

    public int Resolution { get; }

    public int CropTo { get; }

    public int ResizeTo { get; }

    public int Channels { get; }

    public override string ToString() => $"shorter side {ResizeTo}, center crop {CropTo}, resize {Resolution}, {Channels} channel(s)";

    /// <summary>Applies the pipeline to planar <paramref name="source"/> (C, H, W), C 1 or 3, into <paramref name="destination"/> (Channels, R, R).</summary>
    public void Apply(ReadOnlySpan<byte> source, int sourceChannels, int sourceHeight, int sourceWidth, Span<byte> destination)
    {
        if (sourceChannels is not (1 or 3))
        {
            throw new ArgumentException($"Images must have 1 or 3 channels, not {sourceChannels}.");
        }
        int plane = sourceHeight * sourceWidth;
        byte[]? gray = null;
        int planes = sourceChannels;
        if (sourceChannels == 3 && Channels == 1)
        {
            gray = new byte[plane];
            for (int i = 0; i < plane; i++)
            {
                gray[i] = (byte)Math.Clamp(MathF.Round(0.299f * source[i] + 0.587f * source[plane + i] + 0.114f * source[2 * plane + i]), 0f, 255f);
            }
            planes = 1;
        }
        int outPlane = Resolution * Resolution;
        for (int c = 0; c < planes; c++)
        {
            var input = gray is not null ? gray : source.Slice(c * plane, plane);
            ApplyPlane(input, sourceHeight, sourceWidth, destination.Slice(c * outPlane, outPlane));
        }
        if (planes == 1 && Channels == 3)
        {
            destination[..outPlane].CopyTo(destination.Slice(outPlane, outPlane));
            destination[..outPlane].CopyTo(destination.Slice(2 * outPlane, outPlane));
        }
    }

    private void ApplyPlane(ReadOnlySpan<byte> plane, int height, int width, Span<byte> destination)
    {
        int shorter = Math.Min(height, width);
        int resizedW = Math.Max(CropTo, (int)Math.Round((double)width * ResizeTo / shorter));
        int resizedH = Math.Max(CropTo, (int)Math.Round((double)height * ResizeTo / shorter));
        ReadOnlySpan<byte> current = plane;
        if (resizedW != width || resizedH != height)
        {
            var resized = new byte[resizedW * resizedH];
            ImageResize.Resize(plane, width, height, resized, resizedW, resizedH);
            current = resized;
        }
        if (CropTo == Resolution)
        {
            ImageResize.CenterCrop(current, resizedW, resizedH, destination, CropTo, CropTo);
            return;
        }
        var cropped = new byte[CropTo * CropTo];
        ImageResize.CenterCrop(current, resizedW, resizedH, cropped, CropTo, CropTo);
        ImageResize.Resize(cropped, CropTo, CropTo, destination, Resolution, Resolution);
    }
}

using IlgpuOct.Kernels;

namespace IlgpuOct.Nn;

/// <summary>
/// A float32 buffer on an accelerator with an NCHW (or (N, F)) shape. The host never indexes it
/// directly on CUDA; <see cref="Download"/> and <see cref="Upload(ReadOnlySpan{float})"/> copy.
/// </summary>
public sealed class Tensor : IDisposable
{
    private readonly DeviceBuffer<float> _buffer; // (at least product of Shape): the whole buffer, or the one this view lies in
    private readonly int _offset; // first element of this tensor in _buffer
    private readonly bool _ownsBuffer; // false for a view from Rows: disposing it frees nothing

    private Tensor(Accelerator accelerator, DeviceBuffer<float> buffer, int[] shape, int offset = 0, bool ownsBuffer = true)
    {
        Accelerator = accelerator;
        _buffer = buffer;
        Shape = shape;
        _offset = offset;
        _ownsBuffer = ownsBuffer;
        Length = ElementCount(shape);
    }

    public Accelerator Accelerator { get; }

    /// <summary>Dimensions, outermost first: (N, C, H, W) for images, (N, F) for vectors, (F) for parameters of BN/Linear bias.</summary>
    public int[] Shape { get; }

    public int Length { get; }

    public int Rank => Shape.Length;

    /// <summary>What operators take.</summary>
    public View<float> View => _offset == 0 && Length == _buffer.Length ? _buffer.View : _buffer.View.Slice(_offset, Length);

    public bool IsDisposed => _buffer.IsDisposed;

    /// <summary>Size of dimension <paramref name="axis"/> (negative counts from the end).</summary>
    public int Dim(int axis) => Shape[axis < 0 ? Shape.Length + axis : axis];

    /// <summary>Allocates a zero-filled tensor.</summary>
    public static Tensor Zeros(Accelerator accelerator, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        int length = ElementCount(shape);
        var buffer = accelerator.Allocate<float>(length);
        if (!accelerator.RunsKernelsOnHost)
        {
            accelerator.Clear(buffer.View); // device memory is not zeroed by allocation
        }
        return new Tensor(accelerator, buffer, (int[])shape.Clone());
    }

    /// <summary>Allocates a tensor holding a copy of <paramref name="data"/>.</summary>
    public static Tensor FromHost(Accelerator accelerator, ReadOnlySpan<float> data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        int length = ElementCount(shape);
        if (data.Length != length)
        {
            throw new ArgumentException($"Shape [{string.Join(", ", shape)}] holds {length} elements but {data.Length} values were given.", nameof(data));
        }
        var buffer = accelerator.Upload(data);
        return new Tensor(accelerator, buffer, (int[])shape.Clone());
    }

    /// <summary>
    /// Counts writes through this class (<see cref="Zero"/>, <see cref="Upload(ReadOnlySpan{float})"/>,
    /// <see cref="CopyFrom"/>) and those that operators writing into <see cref="View"/> announce with
    /// <see cref="MarkWritten"/> (optimizer steps, running statistics): what is derived from a parameter
    /// (eval-mode BN folded into a convolution) is recomputed when it changed.
    /// </summary>
    public long Version { get; private set; }

    /// <summary>Records that an operator wrote this tensor through its view.</summary>
    public void MarkWritten() => Version++;

    public void Zero()
    {
        Accelerator.Clear(View);
        MarkWritten();
    }

    public void Upload(ReadOnlySpan<float> data)
    {
        if (data.Length != Length)
        {
            throw new ArgumentException($"Tensor of shape {ShapeText(Shape)} holds {Length} elements; {data.Length} values were given.", nameof(data));
        }
        Accelerator.CopyFromHost(data, View);
        MarkWritten();
    }

    public float[] Download() => Accelerator.Download(View);

    public void CopyFrom(Tensor source)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.Length != Length)
        {
            throw new ArgumentException($"Cannot copy a tensor of shape {ShapeText(source.Shape)} into one of shape {ShapeText(Shape)}.", nameof(source));
        }
        Accelerator.Copy(source.View, View);
        MarkWritten();
    }

    /// <summary>True when the shape equals <paramref name="shape"/>.</summary>
    public bool HasShape(ReadOnlySpan<int> shape) => Shape.AsSpan().SequenceEqual(shape);

    public void Dispose()
    {
        if (_ownsBuffer)
        {
            _buffer.Dispose();
        }
    }

    /// <summary>
    /// Rows [<paramref name="start"/>, start + <paramref name="count"/>) of the first axis as a tensor that
    /// shares this one's memory (no allocation, no copy); disposing it frees nothing, and it is valid while this tensor is.
    /// </summary>
    public Tensor Rows(int start, int count)
    {
        int rows = Shape[0];
        if (start < 0 || count <= 0 || start + count > rows)
        {
            throw new ArgumentOutOfRangeException(nameof(start), $"Rows [{start}, {start + count}) lie outside the {rows} rows of a tensor of shape {ShapeText(Shape)}.");
        }
        int[] shape = (int[])Shape.Clone();
        shape[0] = count;
        return new Tensor(Accelerator, _buffer, shape, _offset + start * (Length / rows), ownsBuffer: false);
    }

    public override string ToString() => $"Tensor{ShapeText(Shape)} on {Accelerator.Id}";

    public static string ShapeText(IReadOnlyList<int> shape) => $"({string.Join(", ", shape)})";

    internal static int ElementCount(int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long count = 1;
        foreach (int d in shape)
        {
            if (d <= 0)
            {
                throw new ArgumentException($"Every dimension must be positive; got shape [{string.Join(", ", shape)}].", nameof(shape));
            }
            count *= d;
        }
        if (count > int.MaxValue)
        {
            throw new ArgumentException($"Shape [{string.Join(", ", shape)}] has {count} elements, more than one buffer can hold; use a smaller batch.", nameof(shape));
        }
        return (int)count;
    }

    /// <summary>
    /// Returns <paramref name="existing"/> when it already has <paramref name="shape"/> on this
    /// accelerator, else disposes it and allocates a new zeroed tensor: activation buffers are
    /// allocated once per batch shape and reused.
    /// </summary>
    public static Tensor Reuse(ref Tensor? existing, Accelerator accelerator, params int[] shape)
    {
        if (existing is not null && !existing.IsDisposed && existing.Accelerator == accelerator && existing.HasShape(shape))
        {
            return existing;
        }
        existing?.Dispose();
        existing = Zeros(accelerator, shape);
        return existing;
    }

    /// <summary>
    /// As <see cref="Reuse"/>, but keeps the largest buffer: a smaller shape gets a view of its first
    /// elements (no allocation), a larger one a new buffer. Layers cache their activations this way, so
    /// forwards that alternate batch sizes (adversarial training's half-batch attack and full-batch step,
    /// a short last batch) allocate only when a batch is larger than every one before. The slot owns the buffer.
    /// </summary>
    public static Tensor ReuseLargest(ref Tensor? existing, Accelerator accelerator, params int[] shape)
    {
        if (existing is not null && !existing.IsDisposed && existing.Accelerator == accelerator)
        {
            if (existing.HasShape(shape))
            {
                return existing;
            }
            if (existing._offset == 0 && existing._ownsBuffer && existing._buffer.Length >= ElementCount(shape))
            {
                // Ownership moves to the new view; the old tensor object is dropped, not disposed.
                existing = new Tensor(accelerator, existing._buffer, (int[])shape.Clone());
                return existing;
            }
        }
        existing?.Dispose();
        existing = Zeros(accelerator, shape);
        return existing;
    }
}

/// <summary>
/// A trainable parameter: its value, the gradient the last backward pass wrote, and the SGD
/// momentum buffer, under its torchvision name (e.g. <c>layer1.0.conv1.weight</c>).
/// </summary>
public sealed class Parameter : IDisposable
{
    public Parameter(string name, Accelerator accelerator, params int[] shape)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
        Value = Tensor.Zeros(accelerator, shape);
        Grad = Tensor.Zeros(accelerator, shape);
        Momentum = Tensor.Zeros(accelerator, shape);
    }

    public string Name { get; }

    public Tensor Value { get; } // same shape as the torchvision parameter

    public Tensor Grad { get; } // same shape as Value; overwritten by each backward pass

    public Tensor Momentum { get; } // same shape as Value; SGD momentum buffer, zero before the first step

    public int[] Shape => Value.Shape;

    public void Dispose()
    {
        Value.Dispose();
        Grad.Dispose();
        Momentum.Dispose();
    }

    public override string ToString() => $"{Name} {Tensor.ShapeText(Shape)}";
}

/// <summary>A non-trainable state tensor saved in checkpoints (batch-norm running statistics).</summary>
public sealed class StateBuffer(string name, Tensor value) : IDisposable
{
    public string Name { get; } = name;

    public Tensor Value { get; } = value; // e.g. (C) for running_mean / running_var

    public void Dispose() => Value.Dispose();
}

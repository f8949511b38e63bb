namespace IlgpuOct.Kernels;

/// <summary>
/// racecheck and initcheck for the shared memory of one block on <c>cpu-kernels</c>, in the spirit of
/// compute-sanitizer. The generated host copy of a kernel reports every shared-memory element access
/// (read, write, read-modify-write, atomic) here. Between two barriers (one "phase"), two different
/// threads touching one element with at least one plain write, or a plain access next to another
/// thread's atomic, is a race: on a GPU the result depends on the warp schedule. A read of an element
/// no thread of the block has written reads uninitialised memory. Each is a
/// <see cref="KernelExecutionException"/> naming kernel, launch, block, threads, array and index.
/// The block's threads are stepped by one OS thread, so no locking is needed.
/// </summary>
internal sealed class KernelSanitizer
{
    // Per element and phase: who wrote, up to two distinct readers and atomic users (thread + 1; 0 = none).
    private struct Track
    {
        public int Phase;
        public int Writer;
        public int Reader1;
        public int Reader2;
        public int Atomic1;
        public int Atomic2;
        public bool Written;
    }

    private readonly string _kernel;
    private readonly LaunchConfig _config;
    private readonly List<(Array Memory, Track[] Tracks)> _arrays = [];
    private int _phase = 1;

    public KernelSanitizer(string kernel, LaunchConfig config)
    {
        _kernel = kernel;
        _config = config;
    }

    /// <summary>A barrier opened: accesses after it are ordered after every access before it.</summary>
    public void NextPhase() => _phase++;

    public void Access(BlockState block, Array memory, int index, int thread, SharedAccess access, string name)
    {
        var tracks = TracksOf(memory);
        if ((uint)index >= (uint)tracks.Length)
        {
            return; // the view's own bounds check reports it with the index
        }
        ref var k = ref tracks[index];
        if (k.Phase != _phase)
        {
            k = k with { Phase = _phase, Writer = 0, Reader1 = 0, Reader2 = 0, Atomic1 = 0, Atomic2 = 0 };
        }
        int id = thread + 1;
        bool reads = access != SharedAccess.Write;
        bool writes = access != SharedAccess.Read;
        if (reads && !k.Written)
        {
            throw Error(block, $"initcheck: thread {ThreadOf(block, thread)} {Verb(access)} {name}[{index}] (shared memory), which no thread of the block has written; " +
                "shared memory is uninitialised on a GPU. Write every element before any thread reads it (and put ctx.Barrier() between).");
        }
        if (k.Writer != 0 && k.Writer != id)
        {
            throw Race(block, name, index, k.Writer - 1, "writes", thread, Verb(access));
        }
        if (access != SharedAccess.Atomic && Other(k.Atomic1, k.Atomic2, id) is int atomicUser and > 0)
        {
            throw Race(block, name, index, atomicUser - 1, "updates atomically", thread, Verb(access));
        }
        if (writes && Other(k.Reader1, k.Reader2, id) is int reader and > 0)
        {
            throw Race(block, name, index, reader - 1, "reads", thread, Verb(access));
        }
        if (access == SharedAccess.Atomic)
        {
            Add(ref k.Atomic1, ref k.Atomic2, id);
        }
        else
        {
            if (reads)
            {
                Add(ref k.Reader1, ref k.Reader2, id);
            }
            if (writes)
            {
                k.Writer = id;
            }
        }
        k.Written |= writes;
    }

    private Track[] TracksOf(Array memory)
    {
        foreach (var (m, tracks) in _arrays)
        {
            if (ReferenceEquals(m, memory))
            {
                return tracks;
            }
        }
        var created = new Track[memory.Length];
        _arrays.Add((memory, created));
        return created;
    }

    // A thread of the pair (first, second) other than id, or 0.
    private static int Other(int first, int second, int id) => first != 0 && first != id ? first : second != 0 && second != id ? second : 0;

    private static void Add(ref int first, ref int second, int id)
    {
        if (first == 0)
        {
            first = id;
        }
        else if (first != id && second == 0)
        {
            second = id;
        }
    }

    private static string Verb(SharedAccess access) => access switch
    {
        SharedAccess.Read => "reads",
        SharedAccess.Write => "writes",
        SharedAccess.ReadWrite => "updates (reads and writes)",
        _ => "updates atomically",
    };

    private KernelExecutionException Race(BlockState block, string name, int index, int earlier, string earlierVerb, int thread, string verb) =>
        Error(block, $"racecheck: thread {ThreadOf(block, earlier)} {earlierVerb} {name}[{index}] (shared memory) and thread {ThreadOf(block, thread)} {verb} it " +
            $"between the same two barriers (phase {_phase}); on a GPU the result depends on the schedule. Put ctx.Barrier() between the accesses, " +
            "let one thread own the element, or use Atomic for both.");

    private KernelExecutionException Error(BlockState block, string what) =>
        new($"Kernel {_kernel} ({_config}), block {block.BlockIdx}: {what}");

    internal static Dim3 ThreadOf(BlockState block, int linear)
    {
        var dim = block.BlockDim;
        return new Dim3(linear % dim.X, linear / dim.X % dim.Y, linear / (dim.X * dim.Y));
    }
}

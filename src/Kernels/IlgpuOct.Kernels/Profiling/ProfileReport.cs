namespace IlgpuOct.Kernels.Profiling;

/// <summary>One row of a profile: a kernel (cuda, cpu-kernels) or an operator (cpu), aggregated over the run.</summary>
public sealed record ProfileRow(
    string Name,
    string Operators,
    int Count,
    double TotalMilliseconds,
    double MeanMilliseconds,
    double Share,
    double? FlopsPerLaunch,
    double? BytesPerLaunch,
    double? Gflops,
    double? GBytesPerSecond,
    double? RooflineFraction);

/// <summary>
/// A profiled run aggregated per kernel (or per operator where no kernel ran: the cpu engine).
/// FLOPs and bytes come from the operators' cost models; an operator call that launches several
/// kernels shares its cost among them in proportion to their time. The roofline fraction is
/// achieved / attainable = max(GFLOP/s / peak GFLOP/s, GB/s / peak GB/s).
/// </summary>
public sealed record ProfileReport(
    string Workload,
    string Device,
    string Granularity,
    int Steps,
    double WallMilliseconds,
    Roofline? Roofline,
    IReadOnlyList<ProfileRow> Rows)
{
    public double TimedMilliseconds => Rows.Sum(r => r.TotalMilliseconds);

    public static ProfileReport Build(string workload, string device, int steps, double wallMilliseconds, Profiler profiler, Roofline? roofline)
    {
        ArgumentNullException.ThrowIfNull(profiler);
        profiler.Resolve();
        var rows = profiler.Launches.Count > 0 ? KernelRows(profiler, roofline) : OperatorRows(profiler, roofline);
        return Finish(workload, device, profiler.Launches.Count > 0 ? "kernel" : "operator", steps, wallMilliseconds, roofline, rows, byTime: true);
    }

    /// <summary>
    /// One row per operator call of a step, in call order, the i-th call of every step together: on the cpu
    /// engine, where a call's time is its operator's, this is the per-layer breakdown ("#07 Conv2d.ForwardNhwc").
    /// The steps must make the same calls; kernel devices (whose calls only enqueue launches) are refused.
    /// </summary>
    public static ProfileReport BuildPerCall(string workload, string device, int steps, double wallMilliseconds, Profiler profiler, Roofline? roofline)
    {
        ArgumentNullException.ThrowIfNull(profiler);
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        profiler.Resolve();
        if (profiler.Launches.Count > 0)
        {
            throw new InvalidOperationException($"a per-call profile is for the cpu engine, whose operators run in their calls; {device} launched {profiler.Launches.Count} kernels, timed per kernel: drop --per-call there (or use --device cpu).");
        }
        var calls = profiler.Calls;
        int perStep = calls.Count / steps;
        if (perStep * steps != calls.Count || Enumerable.Range(0, calls.Count).Any(i => calls[i].Operator != calls[i % perStep].Operator))
        {
            throw new InvalidOperationException($"the {steps} profiled steps made different operator calls ({calls.Count} in all); a per-call profile needs steps that repeat the same calls.");
        }
        var rows = calls.Select((c, i) => (Position: i % perStep, Call: c))
            .GroupBy(p => p.Position)
            .Select(g => CallRow($"#{g.Key + 1:D2} {calls[g.Key].Operator}", calls[g.Key].Operator, [.. g.Select(p => p.Call)]))
            .ToList();
        return Finish(workload, device, "call", steps, wallMilliseconds, roofline, rows, byTime: false);
    }

    private static ProfileReport Finish(string workload, string device, string granularity, int steps, double wallMilliseconds, Roofline? roofline, List<Partial> rows, bool byTime)
    {
        double total = rows.Sum(r => r.Total);
        var finished = (byTime ? rows.OrderByDescending(r => r.Total) : rows.AsEnumerable())
            .Select(r => Finish(r, total, roofline))
            .ToArray();
        return new ProfileReport(workload, device, granularity, steps, wallMilliseconds, roofline, finished);
    }

    private static List<Partial> KernelRows(Profiler profiler, Roofline? roofline)
    {
        var calls = profiler.Calls.ToDictionary(c => c.Id);
        var timeInCall = profiler.Launches.GroupBy(l => l.CallId).ToDictionary(g => g.Key, g => (Time: g.Sum(l => l.Milliseconds), Count: g.Count()));
        var rows = new List<Partial>();
        foreach (var group in profiler.Launches.GroupBy(l => l.Kernel))
        {
            double flops = 0, bytes = 0;
            bool costed = false;
            var operators = new SortedSet<string>(StringComparer.Ordinal);
            foreach (var launch in group)
            {
                if (!calls.TryGetValue(launch.CallId, out var call))
                {
                    continue;
                }
                operators.Add(call.Operator);
                if (call.Cost is not { } cost)
                {
                    continue;
                }
                costed = true;
                var (time, count) = timeInCall[launch.CallId];
                double weight = time > 0 ? launch.Milliseconds / time : 1.0 / count;
                flops += cost.Flops * weight;
                bytes += cost.Bytes * weight;
            }
            rows.Add(new Partial(group.Key, string.Join(", ", operators), group.Count(), group.Sum(l => l.Milliseconds), costed ? flops : null, costed ? bytes : null));
        }
        return rows;
    }

    private static List<Partial> OperatorRows(Profiler profiler, Roofline? roofline) =>
        profiler.Calls.GroupBy(c => c.Operator).Select(g => CallRow(g.Key, g.Key, [.. g])).ToList();

    // One row of operator calls: their count and time, and their cost where every call has one.
    private static Partial CallRow(string name, string operators, IReadOnlyList<OperatorCallRecord> calls)
    {
        bool costed = calls.All(c => c.Cost is not null);
        return new Partial(name, operators, calls.Count, calls.Sum(c => c.ExclusiveMilliseconds),
            costed ? calls.Sum(c => c.Cost!.Value.Flops) : null, costed ? calls.Sum(c => c.Cost!.Value.Bytes) : null);
    }

    private static ProfileRow Finish(Partial r, double total, Roofline? roofline)
    {
        double seconds = r.Total / 1000;
        double? gflops = r.Flops is { } f && seconds > 0 ? f / seconds / 1e9 : null;
        double? gbytes = r.Bytes is { } b && seconds > 0 ? b / seconds / 1e9 : null;
        double? fraction = null;
        if (roofline is not null && gflops is not null)
        {
            double compute = gflops.Value / roofline.PeakGflops;
            double memory = roofline.PeakGBytesPerSecond is { } peakBytes && gbytes is not null ? gbytes.Value / peakBytes : 0;
            fraction = Math.Max(compute, memory);
        }
        return new ProfileRow(r.Name, r.Operators, r.Count, r.Total, r.Total / r.Count, total > 0 ? r.Total / total : 0,
            r.Flops / r.Count, r.Bytes / r.Count, gflops, gbytes, fraction);
    }

    private sealed record Partial(string Name, string Operators, int Count, double Total, double? Flops, double? Bytes);
}

using System.Globalization;
using System.Text;

namespace IlgpuOct.Kernels.Fuzzing;

/// <summary>Constructs the fuzzer may use; a class whose translator fix is pending can be left out of a run.</summary>
[Flags]
public enum FuzzFeatures
{
    None = 0,

    /// <summary>Locals named like generated names, C/CUDA functions and C++ keywords (min_, x_length, expf, delete, ...).</summary>
    NameCollisions = 1 << 0,

    /// <summary>++/-- and assignments inside expressions, compound assignments with side-effecting targets (C# order of evaluation).</summary>
    SideEffects = 1 << 1,

    /// <summary>Signed +, -, * that may overflow (wraps in C#, undefined in C++/CUDA).</summary>
    SignedOverflow = 1 << 2,

    /// <summary>Shift counts outside 0..bits-1 (C# masks them).</summary>
    ShiftCounts = 1 << 3,

    /// <summary>float.NaN / double.NaN and infinities as constants.</summary>
    SpecialConstants = 1 << 4,

    /// <summary>Shared memory with barriers.</summary>
    SharedMemory = 1 << 5,

    /// <summary>Warp shuffles.</summary>
    Shuffles = 1 << 6,

    /// <summary>Integer atomics (order-independent ones).</summary>
    Atomics = 1 << 7,

    /// <summary>Static helper methods.</summary>
    Helpers = 1 << 8,

    /// <summary>Kernel scalar parameters named config / accelerator.</summary>
    ParameterNames = 1 << 9,

    /// <summary>float/double to integer conversions whose value is out of the target's range (saturating in .NET and on the GPU, undefined in C++).</summary>
    RawFloatToInt = 1 << 10,

    All = (1 << 11) - 1,
}

/// <summary>A generated program: its kernel's top-level statements (removable one by one) and the source they make.</summary>
public sealed class FuzzProgram
{
    internal FuzzProgram(long seed, string className, IReadOnlyList<FuzzStatement> statements, IReadOnlyList<string> helpers, string scalarName)
    {
        Seed = seed;
        ClassName = className;
        Statements = statements;
        Helpers = helpers;
        ScalarName = scalarName;
    }

    public long Seed { get; }

    public string ClassName { get; }

    internal IReadOnlyList<FuzzStatement> Statements { get; }

    internal IReadOnlyList<string> Helpers { get; }

    internal string ScalarName { get; }

    public int StatementCount => Statements.Count;

    /// <summary>Kernel name in the registry.</summary>
    public string KernelName => ClassName + ".K";

    /// <summary>The program without statement <paramref name="index"/> (for minimisation).</summary>
    public FuzzProgram Without(int index) =>
        new(Seed, ClassName, Statements.Where((_, i) => i != index).ToArray(), Helpers, ScalarName);

    /// <summary>The program without helper <paramref name="index"/>.</summary>
    public FuzzProgram WithoutHelper(int index) =>
        new(Seed, ClassName, Statements, Helpers.Where((_, i) => i != index).ToArray(), ScalarName);

    /// <summary>The complete C# source: namespace, partial class, helpers and the [Kernel] method.</summary>
    public string Source
    {
        get
        {
            var sb = new StringBuilder();
            sb.Append("// Fuzz program, seed ").Append(Seed.ToString(CultureInfo.InvariantCulture)).Append('\n');
            sb.Append("namespace IlgpuOct.Fuzz;\n\npublic static partial class ").Append(ClassName).Append("\n{\n");
            foreach (var h in Helpers)
            {
                sb.Append("    ").Append(h).Append('\n');
            }
            sb.Append("    [Kernel]\n");
            sb.Append("    public static void K(KernelContext ctx, View<int> x, View<uint> u, View<long> l, View<float> f, View<double> d, View<long> o, View<float> of, View<double> od, View<int> acc, int ")
                .Append(ScalarName).Append(")\n    {\n");
            // Shared arrays must be top-level locals of the kernel body, so they come before the unchecked block.
            foreach (var s in Statements.Where(s => s.IsSharedDeclaration))
            {
                foreach (var line in s.Text.Split('\n'))
                {
                    sb.Append("        ").Append(line).Append('\n');
                }
            }
            sb.Append("        unchecked\n        {\n");
            sb.Append("            int t = ctx.ThreadIdx.X;\n            int g = ctx.GlobalX;\n");
            foreach (var s in Statements.Where(s => !s.IsSharedDeclaration))
            {
                foreach (var line in s.Text.Split('\n'))
                {
                    sb.Append("            ").Append(line).Append('\n');
                }
            }
            // Every surviving top-level local goes out, so any difference in its value is seen.
            var live = Statements.SelectMany(s => s.Declares).ToList();
            int slotsLong = 0, slotsFloat = 0, slotsDouble = 0;
            foreach (var (name, type) in live)
            {
                switch (type)
                {
                    case "float":
                        sb.Append("            of[g * ").Append(FuzzProgramGenerator.Slots).Append(" + ").Append(slotsFloat++ % FuzzProgramGenerator.Slots).Append("] = ").Append(name).Append(";\n");
                        break;
                    case "double":
                        sb.Append("            od[g * ").Append(FuzzProgramGenerator.Slots).Append(" + ").Append(slotsDouble++ % FuzzProgramGenerator.Slots).Append("] = ").Append(name).Append(";\n");
                        break;
                    case "bool":
                        sb.Append("            o[g * ").Append(FuzzProgramGenerator.Slots).Append(" + ").Append(slotsLong++ % FuzzProgramGenerator.Slots).Append("] = ").Append(name).Append(" ? 1L : 0L;\n");
                        break;
                    default:
                        sb.Append("            o[g * ").Append(FuzzProgramGenerator.Slots).Append(" + ").Append(slotsLong++ % FuzzProgramGenerator.Slots).Append("] = (long)").Append(name).Append(";\n");
                        break;
                }
            }
            sb.Append("        }\n    }\n}\n");
            return sb.ToString();
        }
    }
}

/// <summary>One top-level statement of a fuzz kernel and the top-level locals it declares.</summary>
internal sealed record FuzzStatement(string Text, IReadOnlyList<(string Name, string Type)> Declares, bool IsSharedDeclaration = false);

/// <summary>
/// Seeded random well-typed kernels over int, uint, long, float, double and bool. Every construct
/// keeps C# defined: divisors are never zero, float-to-int conversions are clamped unless
/// <see cref="FuzzFeatures.RawFloatToInt"/>, signed arithmetic goes through unsigned unless
/// <see cref="FuzzFeatures.SignedOverflow"/>; barriers and shuffles are reached by every thread.
/// </summary>
public sealed class FuzzProgramGenerator
{
    /// <summary>Threads per block (two warps) and blocks per grid.</summary>
    public const int BlockSize = 64;

    public const int Blocks = 2;

    /// <summary>Output slots per thread in each of o, of, od.</summary>
    public const int Slots = 16;

    /// <summary>Length of every input view (a power of two: indices are masked into range).</summary>
    public const int InputLength = 64;

    private static readonly string[] Types = ["int", "uint", "long", "float", "double", "bool"];

    private static readonly string[] CollidingNames =
    [
        "min_", "max_", "x_length", "d_length", "f_length", "o_length", "sh_length", "expf", "sqrtf", "fmodf", "rintf", "fabsf",
        "delete", "template", "typename", "register", "union", "auto", "signed", "asm", "friend", "mutable", "inline", "restrict",
        "threadIdx", "blockDim", "blockIdx", "gridDim", "warpSize", "__shfl0", "__shfl1", "ioct_global_x", "ioct_max", "ioct_dynamic_shared",
        "__syncthreads", "atomicAdd", "min", "max", "abs", "NULL", "main", "float4", "uint3", "dim3", "size_t", "INT_MAX",
        "nullptr", "constexpr", "noexcept", "typeid", "export", "ioct_fn_H0", "t_", "g_", "ctx_", "x_", "__global__", "__device__",
    ];

    private readonly Random _random;
    private readonly FuzzFeatures _features;
    private readonly List<List<(string Name, string Type, bool Mutable)>> _scopes = new();
    private readonly HashSet<string> _usedNames = new(StringComparer.Ordinal);
    private readonly List<(string Name, string ReturnType, string[] Parameters)> _helpers = new();
    private int _nextName;
    private bool _inHelper;

    private FuzzProgramGenerator(long seed, FuzzFeatures features)
    {
        _random = new Random(unchecked((int)(seed ^ (seed >> 32))));
        _features = features;
    }

    /// <summary>The program of <paramref name="seed"/>: the same seed and features always give the same source.</summary>
    public static FuzzProgram Generate(long seed, FuzzFeatures features = FuzzFeatures.All) => new FuzzProgramGenerator(seed, features).Build(seed);

    private bool Has(FuzzFeatures f) => (_features & f) != 0;

    private FuzzProgram Build(long seed)
    {
        string className = "P" + seed.ToString(CultureInfo.InvariantCulture).Replace('-', 'm');
        var helperTexts = new List<string>();
        if (Has(FuzzFeatures.Helpers))
        {
            int count = _random.Next(0, 3);
            for (int i = 0; i < count; i++)
            {
                helperTexts.Add(Helper(i));
            }
        }
        string scalar = Has(FuzzFeatures.ParameterNames) && _random.Next(4) == 0 ? (_random.Next(2) == 0 ? "config" : "accelerator") : "n";
        _scopes.Add(new List<(string, string, bool)> { ("t", "int", false), ("g", "int", false), (scalar, "int", false) });
        _usedNames.UnionWith(["t", "g", "ctx", "x", "u", "l", "f", "d", "o", "of", "od", "acc", scalar]);

        var statements = new List<FuzzStatement>();
        bool shared = Has(FuzzFeatures.SharedMemory) && _random.Next(3) == 0;
        if (shared)
        {
            statements.Add(new FuzzStatement("var sh = ctx.Shared<int>(" + BlockSize + ");\nvar shf = ctx.Shared<float>(" + BlockSize + ");", [], IsSharedDeclaration: true));
            _usedNames.UnionWith(["sh", "shf"]);
        }
        // Seed locals from the inputs so values differ per thread.
        foreach (var type in new[] { "int", "uint", "long", "float", "double" })
        {
            statements.Add(Declare(type, InputRead(type, "g"), topLevel: true));
        }
        int count2 = _random.Next(6, 18);
        for (int i = 0; i < count2; i++)
        {
            int kind = _random.Next(10);
            if (kind == 0 && shared)
            {
                statements.Add(SharedExchange());
            }
            else if (kind == 1 && Has(FuzzFeatures.Shuffles))
            {
                statements.Add(ShuffleStatement());
            }
            else if (kind == 2 && Has(FuzzFeatures.Atomics))
            {
                statements.Add(new FuzzStatement(AtomicStatement(), []));
            }
            else if (kind <= 5)
            {
                string type = Types[_random.Next(Types.Length)];
                statements.Add(Declare(type, Expr(type, 3), topLevel: true));
            }
            else
            {
                statements.Add(new FuzzStatement(Statement(2), []));
            }
        }
        return new FuzzProgram(seed, className, statements, helperTexts, scalar);
    }

    private string Helper(int index)
    {
        string returnType = Types[_random.Next(5)];
        var parameters = new[] { Types[_random.Next(5)], Types[_random.Next(5)] };
        string name = "H" + index.ToString(CultureInfo.InvariantCulture);
        // A helper sees only its own parameters (named a and b).
        _scopes.Add(new List<(string, string, bool)> { ("a", parameters[0], false), ("b", parameters[1], false) });
        var helperUsed = new HashSet<string>(_usedNames);
        _usedNames.Clear();
        _usedNames.UnionWith(["a", "b"]);
        _inHelper = true;
        string body = Expr(returnType, 3);
        _inHelper = false;
        _usedNames.Clear();
        _usedNames.UnionWith(helperUsed);
        _scopes.RemoveAt(_scopes.Count - 1);
        _helpers.Add((name, returnType, parameters));
        return "private static " + returnType + " " + name + "(" + parameters[0] + " a, " + parameters[1] + " b) { unchecked { return " + body + "; } }";
    }

    private string FreshName()
    {
        if (Has(FuzzFeatures.NameCollisions) && _random.Next(3) == 0)
        {
            string candidate = CollidingNames[_random.Next(CollidingNames.Length)];
            if (_usedNames.Add(candidate))
            {
                return candidate;
            }
        }
        string name;
        do
        {
            name = "v" + (_nextName++).ToString(CultureInfo.InvariantCulture);
        }
        while (!_usedNames.Add(name));
        return name;
    }

    private FuzzStatement Declare(string type, string init, bool topLevel)
    {
        string name = FreshName();
        _scopes[^1].Add((name, type, true));
        return new FuzzStatement(type + " " + name + " = " + init + ";", topLevel ? [(name, type)] : []);
    }

    private string InputRead(string type, string index)
    {
        string view = type switch { "int" => "x", "uint" => "u", "long" => "l", "float" => "f", _ => "d" };
        return view + "[(" + index + ") & " + (InputLength - 1) + "]";
    }

    private FuzzStatement SharedExchange()
    {
        string source = Pick("int", mutableOnly: false) ?? "t";
        string fsource = Pick("float", mutableOnly: false) ?? "0.5f";
        int shift = _random.Next(1, BlockSize);
        string a = FreshName();
        string b = FreshName();
        _scopes[0].Add((a, "int", true));
        _scopes[0].Add((b, "float", true));
        string text = "sh[t] = " + source + ";\nshf[t] = " + fsource + ";\nctx.Barrier();\n" +
            "int " + a + " = sh[(t + " + shift + ") & " + (BlockSize - 1) + "];\n" +
            "float " + b + " = shf[(t * 3 + " + shift + ") & " + (BlockSize - 1) + "];\nctx.Barrier();";
        return new FuzzStatement(text, [(a, "int"), (b, "float")]);
    }

    private FuzzStatement ShuffleStatement()
    {
        string type = new[] { "int", "uint", "long", "float", "double" }[_random.Next(5)];
        string operand = Pick(type, mutableOnly: false) ?? (type == "int" ? "t" : Literal(type));
        string call = _random.Next(4) switch
        {
            0 => "ctx.ShuffleDown(" + operand + ", " + _random.Next(0, 32) + ")",
            1 => "ctx.ShuffleUp(" + operand + ", " + _random.Next(0, 32) + ")",
            2 => "ctx.ShuffleXor(" + operand + ", " + _random.Next(0, 32) + ")",
            _ => "ctx.Shuffle(" + operand + ", (t * " + _random.Next(1, 8) + " + " + _random.Next(0, 32) + ") & 31)",
        };
        return Declare(type, call, topLevel: true);
    }

    private string AtomicStatement()
    {
        string op = new[] { "Add", "Max", "Min" }[_random.Next(3)];
        return "Atomic." + op + "(ref acc[(" + Expr("int", 1) + ") & 3], " + Expr("int", 2) + ");";
    }

    private string Statement(int depth)
    {
        int kind = _random.Next(depth <= 0 ? 3 : 7);
        switch (kind)
        {
            case 0:
            case 1:
            {
                string? target = PickAny(mutableOnly: true, out string type);
                if (target is null)
                {
                    return "{ }";
                }
                return Assignment(target, type) + ";";
            }
            case 2:
            {
                string type = Types[_random.Next(Types.Length)];
                _scopes.Add(new());
                string decl = Declare(type, Expr(type, 2), topLevel: false).Text;
                string body = Statement(depth - 1);
                _scopes.RemoveAt(_scopes.Count - 1);
                return "{\n    " + decl + "\n    " + Indent(body) + "\n}";
            }
            case 3:
            {
                string cond = Expr("bool", 2);
                string then = Block(depth - 1);
                return _random.Next(2) == 0 ? "if (" + cond + ")\n" + then : "if (" + cond + ")\n" + then + "\nelse\n" + Block(depth - 1);
            }
            case 4:
            {
                string i = FreshName();
                int trips = _random.Next(1, 5);
                _scopes.Add(new List<(string, string, bool)> { (i, "int", false) });
                string body = LoopBody(depth - 1);
                _scopes.RemoveAt(_scopes.Count - 1);
                return "for (int " + i + " = 0; " + i + " < " + trips + "; " + i + "++)\n" + body;
            }
            case 5:
            {
                string w = FreshName();
                int trips = _random.Next(1, 5);
                _scopes.Add(new List<(string, string, bool)> { (w, "int", false) });
                string body = LoopBody(depth - 1);
                _scopes.RemoveAt(_scopes.Count - 1);
                return _random.Next(2) == 0
                    ? "{\n    int " + w + " = 0;\n    while (" + w + " < " + trips + ")\n    {\n        " + w + "++;\n        " + Indent(Indent(body)) + "\n    }\n}"
                    : "{\n    int " + w + " = 0;\n    do\n    {\n        " + w + "++;\n        " + Indent(Indent(body)) + "\n    }\n    while (" + w + " < " + trips + ");\n}";
            }
            default:
            {
                if (!Has(FuzzFeatures.SideEffects))
                {
                    goto case 0;
                }
                // A compound assignment into a stack array whose index has a side effect.
                string? k = Pick("int", mutableOnly: true);
                if (k is null)
                {
                    goto case 0;
                }
                string arr = FreshName();
                string v = FreshName();
                string op = new[] { "+=", "-=", "*=", "^=", "|=", "%=" }[_random.Next(6)];
                string rhs = op == "%=" ? "((" + Expr("int", 1) + ") & 7) + 1" : Expr("int", 1);
                string first = Expr("int", 1);
                _scopes[^1].Add((v, "int", true));
                return "Span<int> " + arr + " = stackalloc int[8];\n" + arr + "[(" + k + ") & 7] = " + first + ";\n" +
                    arr + "[(" + k + "++) & 7] " + op + " " + rhs + ";\n" +
                    "int " + v + " = " + arr + "[0] ^ " + arr + "[1] ^ " + arr + "[2] ^ " + arr + "[3] ^ " + arr + "[4] ^ " + arr + "[5] ^ " + arr + "[6] ^ " + arr + "[7];";
            }
        }
    }

    private string LoopBody(int depth)
    {
        var parts = new List<string>();
        if (_random.Next(3) == 0)
        {
            parts.Add("if (" + Expr("bool", 1) + ") { " + (_random.Next(2) == 0 ? "break;" : "continue;") + " }");
        }
        parts.Add(Statement(depth));
        if (_random.Next(3) == 0)
        {
            parts.Add("if (" + Expr("bool", 1) + ") { " + (_random.Next(2) == 0 ? "break;" : "continue;") + " }");
        }
        return "{\n    " + string.Join("\n    ", parts.Select(Indent)) + "\n}";
    }

    private string Block(int depth)
    {
        _scopes.Add(new());
        string body = Statement(depth);
        _scopes.RemoveAt(_scopes.Count - 1);
        return "{\n    " + Indent(body) + "\n}";
    }

    private static string Indent(string text) => text.Replace("\n", "\n    ");

    private string Assignment(string target, string type)
    {
        if (type == "bool")
        {
            string[] ops = ["=", "&=", "|=", "^="];
            return target + " " + ops[_random.Next(ops.Length)] + " " + Expr("bool", 2);
        }
        bool integral = type is "int" or "uint" or "long";
        if (integral && Has(FuzzFeatures.SideEffects) && _random.Next(6) == 0)
        {
            return _random.Next(4) switch { 0 => target + "++", 1 => target + "--", 2 => "++" + target, _ => "--" + target };
        }
        var choices = new List<string> { "=", "+=", "-=", "*=" };
        if (integral)
        {
            choices.AddRange(["&=", "|=", "^=", "<<=", ">>=", "/=", "%="]);
        }
        else
        {
            choices.AddRange(["/=", "%="]);
        }
        string op = choices[_random.Next(choices.Count)];
        if (type is "int" or "long" && op is "+=" or "-=" or "*=" && !Has(FuzzFeatures.SignedOverflow))
        {
            string wide = type == "int" ? "uint" : "ulong";
            return target + " = (" + type + ")((" + wide + ")" + target + " " + op[0] + " (" + wide + ")(" + Expr(type, 2) + "))";
        }
        return op switch
        {
            "<<=" or ">>=" => target + " " + op + " " + ShiftCount(type),
            "/=" or "%=" when integral => target + " " + op + " " + SafeDivisor(type),
            _ => target + " " + op + " " + Expr(type, 2),
        };
    }

    private string ShiftCount(string type)
    {
        string count = Expr("int", 1);
        return Has(FuzzFeatures.ShiftCounts) ? "(" + count + ")" : "((" + count + ") & " + (type == "long" ? 63 : 31) + ")";
    }

    private string SafeDivisor(string type) => type switch
    {
        "uint" => "(((" + Expr(type, 1) + ") & 15u) + 1u)",
        "long" => "(((" + Expr(type, 1) + ") & 15L) + 1L)",
        _ => "(((" + Expr(type, 1) + ") & 15) + 1)",
    };

    private string? Pick(string type, bool mutableOnly)
    {
        var candidates = _scopes.SelectMany(s => s).Where(v => v.Type == type && (!mutableOnly || v.Mutable)).ToList();
        return candidates.Count == 0 ? null : candidates[_random.Next(candidates.Count)].Name;
    }

    private string? PickAny(bool mutableOnly, out string type)
    {
        var candidates = _scopes.SelectMany(s => s).Where(v => !mutableOnly || v.Mutable).ToList();
        if (candidates.Count == 0)
        {
            type = "int";
            return null;
        }
        var pick = candidates[_random.Next(candidates.Count)];
        type = pick.Type;
        return pick.Name;
    }

    private string Literal(string type)
    {
        bool special = Has(FuzzFeatures.SpecialConstants) && _random.Next(6) == 0;
        switch (type)
        {
            case "int":
                return new[] { "0", "1", "-1", "2", "7", "31", "32", "33", "-33", "int.MaxValue", "int.MinValue", "1000", "-77", "65535" }[_random.Next(14)];
            case "uint":
                return new[] { "0u", "1u", "2u", "31u", "32u", "4294967295u", "2147483648u", "1000u", "65535u" }[_random.Next(9)];
            case "long":
                return new[] { "0L", "1L", "-1L", "5000000000L", "long.MaxValue", "long.MinValue", "-123456789012L", "63L", "64L" }[_random.Next(9)];
            case "float":
                return special
                    ? new[] { "float.NaN", "float.PositiveInfinity", "float.NegativeInfinity", "float.Epsilon", "float.MaxValue", "-0f" }[_random.Next(6)]
                    : new[] { "0f", "1f", "-1f", "0.5f", "-2.25f", "3f", "1e10f", "1e-10f", "0.1f", "255f" }[_random.Next(10)];
            case "double":
                return special
                    ? new[] { "double.NaN", "double.PositiveInfinity", "double.NegativeInfinity", "double.Epsilon", "-0.0" }[_random.Next(5)]
                    : new[] { "0.0", "1.0", "-1.0", "0.5", "-2.25", "3.0", "1e100", "1e-100", "0.1" }[_random.Next(9)];
            default:
                return _random.Next(2) == 0 ? "true" : "false";
        }
    }

    /// <summary>An expression of C# type <paramref name="type"/>.</summary>
    private string Expr(string type, int depth)
    {
        if (depth <= 0 || _random.Next(4) == 0)
        {
            return Leaf(type);
        }
        switch (type)
        {
            case "bool":
                return _random.Next(6) switch
                {
                    0 => "(!" + Expr("bool", depth - 1) + ")",
                    1 => "(" + Expr("bool", depth - 1) + (_random.Next(2) == 0 ? " && " : " || ") + Expr("bool", depth - 1) + ")",
                    2 => "(" + Expr("bool", depth - 1) + new[] { " & ", " | ", " ^ ", " == ", " != " }[_random.Next(5)] + Expr("bool", depth - 1) + ")",
                    3 => _random.Next(2) == 0 ? "float.IsNaN(" + Expr("float", depth - 1) + ")" : "double.IsInfinity(" + Expr("double", depth - 1) + ")",
                    _ => Comparison(depth),
                };
            case "float":
            case "double":
                return FloatExpr(type, depth);
            default:
                return IntExpr(type, depth);
        }
    }

    private string Comparison(int depth)
    {
        string t = Types[_random.Next(5)];
        string op = new[] { " < ", " <= ", " > ", " >= ", " == ", " != " }[_random.Next(6)];
        return "(" + Expr(t, depth - 1) + op + Expr(t, depth - 1) + ")";
    }

    private string IntExpr(string type, int depth)
    {
        int kind = _random.Next(10);
        switch (kind)
        {
            case 0:
                return "(" + Expr("bool", depth - 1) + " ? " + Expr(type, depth - 1) + " : " + Expr(type, depth - 1) + ")";
            case 1:
                return Conversion(type, depth);
            case 2:
                return "(" + Expr(type, depth - 1) + new[] { " << ", " >> " }[_random.Next(2)] + ShiftCount(type) + ")";
            case 3:
                return "(" + Expr(type, depth - 1) + new[] { " / ", " % " }[_random.Next(2)] + SafeDivisor(type) + ")";
            case 4:
                return "(" + Expr(type, depth - 1) + new[] { " & ", " | ", " ^ " }[_random.Next(3)] + Expr(type, depth - 1) + ")";
            case 5:
                if (type == "long" && _random.Next(2) == 0)
                {
                    // uint op int is long in C#: the translator must widen both before operating.
                    return "(" + Expr("uint", depth - 1) + new[] { " + ", " - ", " * ", " & ", " | " }[_random.Next(5)] + Expr("int", depth - 1) + ")";
                }
                return type == "uint" ? "(~" + Expr(type, depth - 1) + ")" : Negate(type, depth);
            case 6:
                return MathCall(type, depth);
            default:
            {
                string op = new[] { " + ", " - ", " * " }[_random.Next(3)];
                if (type == "uint" || Has(FuzzFeatures.SignedOverflow))
                {
                    return "(" + Expr(type, depth - 1) + op + Expr(type, depth - 1) + ")";
                }
                string wide = type == "int" ? "uint" : "ulong";
                return "((" + type + ")((" + wide + ")" + Expr(type, depth - 1) + op + "(" + wide + ")" + Expr(type, depth - 1) + "))";
            }
        }
    }

    private string Negate(string type, int depth) =>
        Has(FuzzFeatures.SignedOverflow) && _random.Next(2) == 0 ? "(-(" + Expr(type, depth - 1) + "))" : "(~" + Expr(type, depth - 1) + ")";

    private string MathCall(string type, int depth)
    {
        var helper = _helpers.Where(h => h.ReturnType == type).ToList();
        if (helper.Count > 0 && _random.Next(2) == 0)
        {
            var h = helper[_random.Next(helper.Count)];
            return h.Name + "(" + Expr(h.Parameters[0], depth - 1) + ", " + Expr(h.Parameters[1], depth - 1) + ")";
        }
        return type switch
        {
            "float" => new[] { "MathF.Max", "MathF.Min" }[_random.Next(2)] + "(" + Expr(type, depth - 1) + ", " + Expr(type, depth - 1) + ")",
            "double" => new[] { "Math.Max", "Math.Min" }[_random.Next(2)] + "(" + Expr(type, depth - 1) + ", " + Expr(type, depth - 1) + ")",
            _ => new[] { "Math.Max", "Math.Min" }[_random.Next(2)] + "(" + Expr(type, depth - 1) + ", " + Expr(type, depth - 1) + ")",
        };
    }

    private string FloatExpr(string type, int depth)
    {
        string m = type == "float" ? "MathF" : "Math";
        switch (_random.Next(9))
        {
            case 0:
                return "(" + Expr("bool", depth - 1) + " ? " + Expr(type, depth - 1) + " : " + Expr(type, depth - 1) + ")";
            case 1:
                return Conversion(type, depth);
            case 2:
                return "(-(" + Expr(type, depth - 1) + "))";
            case 3:
                return m + "." + new[] { "Floor", "Ceiling", "Truncate", "Round", "Sqrt", "Abs" }[_random.Next(6)] + "(" + Expr(type, depth - 1) + ")";
            case 4:
                return _random.Next(2) == 0
                    ? m + (type == "float" ? ".CopySign(" : ".Max(") + Expr(type, depth - 1) + ", " + Expr(type, depth - 1) + ")"
                    : m + ".FusedMultiplyAdd(" + Expr(type, depth - 1) + ", " + Expr(type, depth - 1) + ", " + Expr(type, depth - 1) + ")";
            case 5:
                return MathCall(type, depth);
            default:
                return "(" + Expr(type, depth - 1) + new[] { " + ", " - ", " * ", " / ", " % " }[_random.Next(5)] + Expr(type, depth - 1) + ")";
        }
    }

    private string Conversion(string type, int depth)
    {
        string from = Types[_random.Next(5)];
        string inner = Expr(from, depth - 1);
        bool floatToInt = from is "float" or "double" && type is "int" or "uint" or "long";
        if (floatToInt && !Has(FuzzFeatures.RawFloatToInt))
        {
            // Clamp into the target's range (NaN to 0) so the conversion is defined everywhere.
            string m = from == "float" ? "MathF" : "Math";
            string suffix = from == "float" ? "f" : "";
            var (lo, hi) = type switch { "uint" => ("0", "4e9"), "long" => ("-9e18", "9e18"), _ => ("-2e9", "2e9") };
            return "((" + type + ")(" + from + ".IsNaN(" + inner + ") ? 0" + suffix + " : " + m + ".Min(" + m + ".Max(" + inner + ", " + lo + suffix + "), " + hi + suffix + ")))";
        }
        return "((" + type + ")" + inner + ")";
    }

    private string Leaf(string type)
    {
        int kind = _random.Next(8);
        if (kind < 4 && Pick(type, mutableOnly: false) is { } name)
        {
            if (type is "int" && Has(FuzzFeatures.SideEffects) && _random.Next(8) == 0 && Pick(type, mutableOnly: true) is { } m)
            {
                return "(" + m + (_random.Next(2) == 0 ? "++" : "--") + ")";
            }
            return name;
        }
        if (kind == 4 && type != "bool" && !_inHelper)
        {
            return InputRead(type, Leaf("int"));
        }
        if (kind == 5 && type == "int" && !_inHelper)
        {
            return new[] { "ctx.ThreadIdx.X", "ctx.BlockIdx.X", "ctx.BlockDim.X", "ctx.LaneIdx", "ctx.WarpIdx", "x.Length", "d.Length" }[_random.Next(7)];
        }
        return Literal(type);
    }
}

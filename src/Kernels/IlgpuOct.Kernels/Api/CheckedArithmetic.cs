using System.ComponentModel;
using System.Runtime.CompilerServices;

namespace IlgpuOct.Kernels;

/// <summary>The operator of a compound assignment checked by <see cref="CheckedArithmetic"/>.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public enum ArithmeticOp
{
    Add,
    Subtract,
    Multiply,
    Divide,
    Remainder,
}

/// <summary>
/// Signed int/long arithmetic of the generated host copies of kernels (<c>cpu-kernels</c>): the same
/// result as C#, but an overflow, which wraps in C# and is undefined behaviour in CUDA C, throws with
/// the kernel's C# expression (the launcher adds kernel, block and thread). uint/ulong arithmetic is
/// not checked: unsigned types are the way to wrap on purpose.
/// </summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public static class CheckedArithmetic
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Add(int a, int b, string expression)
    {
        int r = unchecked(a + b);
        if (((a ^ r) & (b ^ r)) < 0)
        {
            Overflow(expression, "int", a, "+", b);
        }
        return r;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long Add(long a, long b, string expression)
    {
        long r = unchecked(a + b);
        if (((a ^ r) & (b ^ r)) < 0)
        {
            Overflow(expression, "long", a, "+", b);
        }
        return r;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Subtract(int a, int b, string expression)
    {
        int r = unchecked(a - b);
        if (((a ^ b) & (a ^ r)) < 0)
        {
            Overflow(expression, "int", a, "-", b);
        }
        return r;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long Subtract(long a, long b, string expression)
    {
        long r = unchecked(a - b);
        if (((a ^ b) & (a ^ r)) < 0)
        {
            Overflow(expression, "long", a, "-", b);
        }
        return r;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Multiply(int a, int b, string expression)
    {
        long r = (long)a * b;
        if (r != (int)r)
        {
            Overflow(expression, "int", a, "*", b);
        }
        return (int)r;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long Multiply(long a, long b, string expression)
    {
        long high = Math.BigMul(a, b, out long low);
        if (high != (low >> 63))
        {
            Overflow(expression, "long", a, "*", b);
        }
        return low;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Divide(int a, int b, string expression)
    {
        CheckDivisor(a == int.MinValue, a, b, expression, "int", "/");
        return a / b;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long Divide(long a, long b, string expression)
    {
        CheckDivisor(a == long.MinValue, a, b, expression, "long", "/");
        return a / b;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Remainder(int a, int b, string expression)
    {
        CheckDivisor(a == int.MinValue, a, b, expression, "int", "%");
        return a % b;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long Remainder(long a, long b, string expression)
    {
        CheckDivisor(a == long.MinValue, a, b, expression, "long", "%");
        return a % b;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Negate(int a, string expression)
    {
        if (a == int.MinValue)
        {
            Overflow(expression, "int", 0, "neg", a);
        }
        return -a;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long Negate(long a, string expression)
    {
        if (a == long.MinValue)
        {
            Overflow(expression, "long", 0, "neg", a);
        }
        return -a;
    }

    /// <summary><c>target op= value</c> on a location (a view element); returns the new value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Compound(ref int target, ArithmeticOp op, int value, string expression) =>
        target = Apply(target, op, value, expression);

    /// <summary><c>target op= value</c> on a location (a view element); returns the new value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long Compound(ref long target, ArithmeticOp op, long value, string expression) =>
        target = Apply(target, op, value, expression);

    /// <summary><c>++target</c> / <c>--target</c> (delta +1 / -1) on a location; returns the new value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int PreStep(ref int target, int delta, string expression) => target = Add(target, delta, expression);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long PreStep(ref long target, long delta, string expression) => target = Add(target, delta, expression);

    /// <summary><c>target++</c> / <c>target--</c> (delta +1 / -1) on a location; returns the old value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int PostStep(ref int target, int delta, string expression)
    {
        int old = target;
        target = Add(old, delta, expression);
        return old;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long PostStep(ref long target, long delta, string expression)
    {
        long old = target;
        target = Add(old, delta, expression);
        return old;
    }

    private static int Apply(int a, ArithmeticOp op, int b, string expression) => op switch
    {
        ArithmeticOp.Add => Add(a, b, expression),
        ArithmeticOp.Subtract => Subtract(a, b, expression),
        ArithmeticOp.Multiply => Multiply(a, b, expression),
        ArithmeticOp.Divide => Divide(a, b, expression),
        _ => Remainder(a, b, expression),
    };

    private static long Apply(long a, ArithmeticOp op, long b, string expression) => op switch
    {
        ArithmeticOp.Add => Add(a, b, expression),
        ArithmeticOp.Subtract => Subtract(a, b, expression),
        ArithmeticOp.Multiply => Multiply(a, b, expression),
        ArithmeticOp.Divide => Divide(a, b, expression),
        _ => Remainder(a, b, expression),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CheckDivisor(bool dividendIsMin, long a, long divisor, string expression, string type, string op)
    {
        if (divisor == 0)
        {
            DivisionByZero(expression, a, op);
        }
        if (dividendIsMin && divisor == -1)
        {
            Overflow(expression, type, a, op, divisor);
        }
    }

    // The failure paths format the message; kept out of line so the checks inline small.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Overflow(string expression, string type, long a, string op, long b) =>
        throw new OverflowException(
            $"signed {type} overflow in `{expression}` ({(op == "neg" ? $"-({b})" : $"{a} {op} {b}")} does not fit in {type}); " +
            "on a GPU signed overflow is undefined behaviour. Widen to long, or use uint/ulong where wrapping is intended.");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void DivisionByZero(string expression, long a, string op) =>
        throw new DivideByZeroException($"division by zero in `{expression}` ({a} {op} 0); on a GPU integer division by zero is undefined behaviour.");
}

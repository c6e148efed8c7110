using ILGPU;

namespace Raft.Kernels.Ilgpu;

/// <summary>A (max, Σ exp) pair of an online log-sum-exp, plus the Σ (x − max) and count cross-entropy needs.</summary>
internal struct OnlineLse
{
    /// <summary>The running maximum of the raw values (−∞ when empty).</summary>
    public float Max;
    /// <summary>Σ exp((x − Max)/τ).</summary>
    public float SumExp;
    /// <summary>Σ (x − Max) (only maintained by <see cref="GroupMath.AddWithDiff"/>).</summary>
    public float SumDiff;
    /// <summary>The number of values seen.</summary>
    public float Count;

    public static OnlineLse Empty => new() { Max = float.NegativeInfinity, SumExp = 0f, SumDiff = 0f, Count = 0f };
}

/// <summary>Three sums reduced together.</summary>
internal struct Double3
{
    public double X, Y, Z;
}

/// <summary>
/// Group-wide helpers for kernels that run one group per row: shared-memory tree reductions (the group
/// size must be a power of two ≤ <see cref="MaxGroupSize"/>), online log-sum-exp, float classification.
/// Every reduction starts and ends with a barrier, so that the shared scratch can be reused at once; all
/// threads of the group must call them (uniform control flow).
/// </summary>
internal static class GroupMath
{
    /// <summary>The largest group size the kernels are written for (the size of their shared arrays).</summary>
    public const int MaxGroupSize = 256;

    /// <summary>True when <paramref name="x"/> is neither NaN nor ±∞ (exponent bits not all ones).</summary>
    public static bool IsFinite(float x) => (Interop.FloatAsInt(x) & 0x7F800000u) != 0x7F800000u;

    /// <summary>True when <paramref name="x"/> is neither NaN nor ±∞.</summary>
    public static bool IsFinite(double x) => (Interop.FloatAsInt(x) & 0x7FF0000000000000UL) != 0x7FF0000000000000UL;

    /// <summary>Adds one value to an online log-sum-exp at inverse temperature <paramref name="invTau"/>.</summary>
    public static OnlineLse Add(OnlineLse a, float x, float invTau)
    {
        if (x > a.Max)
        {
            a.SumExp = a.SumExp * MathF.Exp((a.Max - x) * invTau) + 1f; // exp(−∞) = 0 when empty
            a.Max = x;
        }
        else
        {
            a.SumExp += MathF.Exp((x - a.Max) * invTau);
        }
        return a;
    }

    /// <summary>Like <see cref="Add"/> at τ = 1, also keeping Σ (x − Max) and the count.</summary>
    public static OnlineLse AddWithDiff(OnlineLse a, float x)
    {
        if (a.Count == 0f)
        {
            a.Max = x; a.SumExp = 1f; a.SumDiff = 0f;
        }
        else if (x > a.Max)
        {
            a.SumExp = a.SumExp * MathF.Exp(a.Max - x) + 1f;
            a.SumDiff += a.Count * (a.Max - x);
            a.Max = x;
        }
        else
        {
            a.SumExp += MathF.Exp(x - a.Max);
            a.SumDiff += x - a.Max;
        }
        a.Count += 1f;
        return a;
    }

    /// <summary>Merges two online log-sum-exp states.</summary>
    public static OnlineLse Merge(OnlineLse a, OnlineLse b, float invTau)
    {
        if (b.Count == 0f && b.SumExp == 0f) return a;
        if (a.Count == 0f && a.SumExp == 0f) return b;
        OnlineLse r;
        if (b.Max > a.Max)
        {
            r.Max = b.Max;
            r.SumExp = a.SumExp * MathF.Exp((a.Max - b.Max) * invTau) + b.SumExp;
            r.SumDiff = a.SumDiff + a.Count * (a.Max - b.Max) + b.SumDiff;
        }
        else
        {
            r.Max = a.Max;
            r.SumExp = a.SumExp + b.SumExp * MathF.Exp((b.Max - a.Max) * invTau);
            r.SumDiff = a.SumDiff + b.SumDiff + b.Count * (b.Max - a.Max);
        }
        r.Count = a.Count + b.Count;
        return r;
    }

    /// <summary>Group-wide merge of every thread's online log-sum-exp; every thread gets the result.</summary>
    public static OnlineLse ReduceLse(ArrayView<float> s0, ArrayView<float> s1, ArrayView<float> s2, ArrayView<float> s3,
        OnlineLse v, float invTau)
    {
        int t = Group.IdxX;
        s0[t] = v.Max; s1[t] = v.SumExp; s2[t] = v.SumDiff; s3[t] = v.Count;
        Group.Barrier();
        for (int half = Group.DimX / 2; half > 0; half >>= 1)
        {
            if (t < half)
            {
                var a = new OnlineLse { Max = s0[t], SumExp = s1[t], SumDiff = s2[t], Count = s3[t] };
                var b = new OnlineLse { Max = s0[t + half], SumExp = s1[t + half], SumDiff = s2[t + half], Count = s3[t + half] };
                var m = Merge(a, b, invTau);
                s0[t] = m.Max; s1[t] = m.SumExp; s2[t] = m.SumDiff; s3[t] = m.Count;
            }
            Group.Barrier();
        }
        var result = new OnlineLse { Max = s0[0], SumExp = s1[0], SumDiff = s2[0], Count = s3[0] };
        Group.Barrier();
        return result;
    }

    /// <summary>Group-wide sum of a float; every thread gets the result.</summary>
    public static float Sum(ArrayView<float> s, float v)
    {
        int t = Group.IdxX;
        s[t] = v;
        Group.Barrier();
        for (int half = Group.DimX / 2; half > 0; half >>= 1)
        {
            if (t < half) s[t] += s[t + half];
            Group.Barrier();
        }
        float result = s[0];
        Group.Barrier();
        return result;
    }

    /// <summary>Group-wide sums of three doubles; every thread gets the result.</summary>
    public static Double3 Sum3(ArrayView<double> s0, ArrayView<double> s1, ArrayView<double> s2, Double3 v)
    {
        int t = Group.IdxX;
        s0[t] = v.X; s1[t] = v.Y; s2[t] = v.Z;
        Group.Barrier();
        for (int half = Group.DimX / 2; half > 0; half >>= 1)
        {
            if (t < half)
            {
                s0[t] += s0[t + half];
                s1[t] += s1[t + half];
                s2[t] += s2[t + half];
            }
            Group.Barrier();
        }
        var result = new Double3 { X = s0[0], Y = s1[0], Z = s2[0] };
        Group.Barrier();
        return result;
    }

    /// <summary>Group-wide maximum of a float; every thread gets the result.</summary>
    public static float Max(ArrayView<float> s, float v)
    {
        int t = Group.IdxX;
        s[t] = v;
        Group.Barrier();
        for (int half = Group.DimX / 2; half > 0; half >>= 1)
        {
            if (t < half) s[t] = MathF.Max(s[t], s[t + half]);
            Group.Barrier();
        }
        float result = s[0];
        Group.Barrier();
        return result;
    }

    /// <summary>Group-wide sum of a double; every thread gets the result.</summary>
    public static double SumDouble(ArrayView<double> s, double v)
    {
        int t = Group.IdxX;
        s[t] = v;
        Group.Barrier();
        for (int half = Group.DimX / 2; half > 0; half >>= 1)
        {
            if (t < half) s[t] += s[t + half];
            Group.Barrier();
        }
        double result = s[0];
        Group.Barrier();
        return result;
    }

    /// <summary>Group-wide minimum of an int; every thread gets the result.</summary>
    public static int Min(ArrayView<int> s, int v)
    {
        int t = Group.IdxX;
        s[t] = v;
        Group.Barrier();
        for (int half = Group.DimX / 2; half > 0; half >>= 1)
        {
            if (t < half && s[t + half] < s[t]) s[t] = s[t + half];
            Group.Barrier();
        }
        int result = s[0];
        Group.Barrier();
        return result;
    }
}

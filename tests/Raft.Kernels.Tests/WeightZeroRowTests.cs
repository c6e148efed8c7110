using ILGPU;
using ILGPU.Runtime;
using static Raft.Kernels.Tests.WeightZeroRows;

namespace Raft.Kernels.Tests;

/// <summary>One ILGPU CPU accelerator for <see cref="WeightZeroRowTests"/> (span and device-view paths).</summary>
public sealed class WeightZeroIlgpuFixture : IDisposable
{
    /// <summary>The kernels on ILGPU's CPU accelerator, owning their context.</summary>
    public IlgpuKernels Kernels { get; } = IlgpuKernels.CreateCpu();

    /// <inheritdoc />
    public void Dispose() => Kernels.Dispose();
}

/// <summary>
/// Rows of weight 0 are neither read nor validated, and get a zero gradient (<see cref="WeightZeroRows"/>), in every
/// implementation of this project: the reference, every SIMD variant of the CPU kernels (one and several threads),
/// and the ILGPU kernels on ILGPU's CPU accelerator through host spans and through device views. The CUDA C kernels
/// run the same check in Raft.Kernels.Cuda.Tests (GPU tests).
/// </summary>
public class WeightZeroRowTests(WeightZeroIlgpuFixture ilgpu) : IClassFixture<WeightZeroIlgpuFixture>
{
    /// <summary>Every implementation here, by name.</summary>
    public static IEnumerable<string> Implementations()
    {
        yield return "reference";
        foreach (var level in CpuKernels.SupportedLevels)
        {
            yield return $"cpu-{level}-1";
            yield return $"cpu-{level}-3";
        }
        yield return "ilgpu-cpu-spans";
        yield return "ilgpu-cpu-views";
    }

    public static TheoryData<string, Garbage> Cases()
    {
        var data = new TheoryData<string, Garbage>();
        foreach (string impl in Implementations())
            foreach (var g in Kinds)
                data.Add(impl, g);
        return data;
    }

    public static TheoryData<string, Garbage> WeightedCases()
    {
        var data = new TheoryData<string, Garbage>();
        foreach (string impl in Implementations())
            foreach (var g in Kinds.Where(g => g != Garbage.All))
                data.Add(impl, g);
        return data;
    }

    private DistillCall Make(string impl)
    {
        if (impl == "reference") return Spans(ReferenceKernels.Instance);
        if (impl == "ilgpu-cpu-spans") return Spans(ilgpu.Kernels);
        if (impl == "ilgpu-cpu-views") return Views(ilgpu.Kernels);
        var parts = impl.Split('-'); // cpu-<level>-<threads>
        return Spans(new CpuKernels(int.Parse(parts[2], System.Globalization.CultureInfo.InvariantCulture), Enum.Parse<SimdLevel>(parts[1])));
    }

    [Theory, MemberData(nameof(Cases))]
    public void GarbageInRowsOfWeightZeroIsNotReadNorValidatedAndGetsAZeroGradient(string impl, Garbage garbage) =>
        Check(Make(impl), garbage, TestData.NextSeed());

    [Theory, MemberData(nameof(WeightedCases))]
    public void TheSameGarbageInAWeightedRowIsStillRejected(string impl, Garbage garbage) =>
        CheckRejectedInAWeightedRow(Make(impl), garbage, TestData.NextSeed());

    [Fact]
    public void TheArgumentCheckSkipsRowsOfWeightZeroOnly()
    {
        var (student, idx, p, w) = Valid(TestData.NextSeed());
        var settings = Settings[0];
        var (_, badIdx, _) = Spoil(student, idx, p, Garbage.All, ZeroRows[0]);
        var (_, _, badP) = Spoil(student, idx, p, Garbage.NaNProbabilities, ZeroRows[0]);
        // weight 0: skipped
        LossArguments.Distill(student, Rows, Vocab, badIdx, p, settings, w, default, 0f);
        LossArguments.Distill(student, Rows, Vocab, idx, badP, settings, w, default, 0f);
        // no weights (all 1), or weights of the wrong length (then reported as such): every row is checked
        Assert.Equal("teacherIndices", Assert.ThrowsAny<ArgumentException>(() => LossArguments.Distill(student, Rows, Vocab, badIdx, p, settings, default, default, 0f)).ParamName);
        Assert.Equal("teacherProbs", Assert.ThrowsAny<ArgumentException>(() => LossArguments.Distill(student, Rows, Vocab, idx, badP, settings, default, default, 0f)).ParamName);
        Assert.Equal("teacherIndices", Assert.ThrowsAny<ArgumentException>(() => LossArguments.Distill(student, Rows, Vocab, badIdx, p, settings, w.AsSpan(1), default, 0f)).ParamName);
        Assert.Equal("rowWeights", Assert.ThrowsAny<ArgumentException>(() => LossArguments.Distill(student, Rows, Vocab, idx, p, settings, w.AsSpan(1), default, 0f)).ParamName);
        // a NaN weight is not 0: its row is checked, and the weight is refused after the teacher entries
        var nanW = (float[])w.Clone();
        nanW[ZeroRows[0]] = float.NaN;
        Assert.Equal("teacherIndices", Assert.ThrowsAny<ArgumentException>(() => LossArguments.Distill(student, Rows, Vocab, badIdx, p, settings, nanW, default, 0f)).ParamName);
        Assert.Equal("rowWeights", Assert.ThrowsAny<ArgumentException>(() => LossArguments.Distill(student, Rows, Vocab, idx, p, settings, nanW, default, 0f)).ParamName);
    }
}

using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;

namespace Raft.Kernels.Ilgpu;

/// <summary>
/// The loaded kernels of one accelerator, compiled on first use and cached for the accelerator's lifetime
/// (shared by every <see cref="IlgpuKernels"/> over it and by <see cref="IlgpuKernels.EmaBalancerStep"/>).
/// Explicitly grouped kernels run on the accelerator's default stream. An empty view (for example
/// <c>default</c>: no weights, loss only) is replaced by a zero-length view of a real buffer before a launch,
/// so that no backend is handed a view without memory behind it.
/// </summary>
internal sealed class KernelSet
{
    private static readonly ConditionalWeakTable<Accelerator, KernelSet> Cache = new();

    private readonly MemoryBuffer1D<float, Stride1D.Dense> _noFloats;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _noInts;
    private readonly Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<int>, ArrayView<DeviceSummary>, DistillParams>> _distillPrepare;
    private readonly Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<int>, DistillParams>> _distillDuplicates;
    private readonly Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<DeviceSummary>, DistillParams>> _distillRows;
    private readonly Lazy<Action<KernelConfig, ArrayView<int>, ArrayView<DeviceSummary>, CrossEntropyParams>> _cePrepare;
    private readonly Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<int>,
        ArrayView<DeviceSummary>, CrossEntropyParams>> _ceRows;
    private readonly Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<DeviceSummary>, int>> _finish;
    private readonly Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<ulong>, ArrayView<int>, TopKParams>> _topK;
    private readonly Lazy<Action<Index1D, ArrayView<double>, ArrayView<double>, ArrayView<long>, ArrayView<double>, ArrayView<double>,
        ArrayView<int>, double>> _ema;

    private KernelSet(Accelerator accelerator)
    {
        _noFloats = accelerator.Allocate1D<float>(1);
        _noInts = accelerator.Allocate1D<int>(1);
        int max = Math.Min(GroupMath.MaxGroupSize, accelerator.MaxNumThreadsPerGroup);
        int size = 1;
        while (size * 2 <= max) size *= 2;
        GroupSize = size;
        var a = accelerator;
        _distillPrepare = new(() => a.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<int>, ArrayView<DeviceSummary>, DistillParams>(DistillKernels.Prepare));
        _distillDuplicates = new(() => a.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<int>, DistillParams>(DistillKernels.FindDuplicates));
        _distillRows = new(() => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<DeviceSummary>, DistillParams>(DistillKernels.Rows));
        _cePrepare = new(() => a.LoadStreamKernel<ArrayView<int>, ArrayView<DeviceSummary>, CrossEntropyParams>(CrossEntropyKernels.Prepare));
        _ceRows = new(() => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<int>,
            ArrayView<DeviceSummary>, CrossEntropyParams>(CrossEntropyKernels.Rows));
        _finish = new(() => a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<DeviceSummary>, int>(RowKernels.Finish));
        _topK = new(() => a.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<ulong>, ArrayView<int>, TopKParams>(RowKernels.TopK));
        _ema = new(() => a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<double>, ArrayView<double>, ArrayView<long>, ArrayView<double>,
            ArrayView<double>, ArrayView<int>, double>(RowKernels.EmaStep));
    }

    /// <summary>The kernels of <paramref name="accelerator"/> (created on first call).</summary>
    public static KernelSet For(Accelerator accelerator) => Cache.GetValue(accelerator, a => new KernelSet(a));

    /// <summary>Threads per group: the largest power of two ≤ min(256, the accelerator's limit).</summary>
    public int GroupSize { get; }

    private ArrayView<float> F(ArrayView<float> v) => v.Length > 0 ? v : _noFloats.View.BaseView.SubView(0, 0);
    private ArrayView<int> I(ArrayView<int> v) => v.Length > 0 ? v : _noInts.View.BaseView.SubView(0, 0);

    private KernelConfig PerRow(int rows) => new(rows, GroupSize);
    private KernelConfig Single => new(1, GroupSize);

    public void DistillPrepare(ArrayView<float> weights, ArrayView<int> idx, ArrayView<float> probs, ArrayView<int> dupStatus,
        ArrayView<DeviceSummary> summary, DistillParams p) =>
        _distillPrepare.Value(Single, F(weights), I(idx), F(probs), I(dupStatus), summary, p);

    public void DistillFindDuplicates(ArrayView<float> weights, ArrayView<int> idx, ArrayView<int> rowStatus, DistillParams p)
    {
        if (p.Rows > 0)
            _distillDuplicates.Value(PerRow(p.Rows), F(weights), I(idx), I(rowStatus), p);
    }

    public void DistillRows(ArrayView<float> student, ArrayView<float> gradient, ArrayView<int> idx, ArrayView<float> probs,
        ArrayView<float> weights, ArrayView<float> rowLoss, ArrayView<int> rowStatus, ArrayView<float> scratch,
        ArrayView<DeviceSummary> summary, DistillParams p)
    {
        if (p.Rows > 0)
            _distillRows.Value(PerRow(p.Rows), F(student), F(gradient), I(idx), F(probs), F(weights), F(rowLoss), I(rowStatus), F(scratch), summary, p);
    }

    public void CrossEntropyPrepare(ArrayView<int> targets, ArrayView<DeviceSummary> summary, CrossEntropyParams p) =>
        _cePrepare.Value(Single, I(targets), summary, p);

    public void CrossEntropyRows(ArrayView<float> logits, ArrayView<float> gradient, ArrayView<int> targets,
        ArrayView<float> rowLoss, ArrayView<int> rowStatus, ArrayView<DeviceSummary> summary, CrossEntropyParams p)
    {
        if (p.Rows > 0)
            _ceRows.Value(PerRow(p.Rows), F(logits), F(gradient), I(targets), F(rowLoss), I(rowStatus), summary, p);
    }

    public void Finish(ArrayView<float> rowLoss, ArrayView<float> weights, ArrayView<int> rowStatus,
        ArrayView<DeviceSummary> summary, int rows) =>
        _finish.Value(Single, F(rowLoss), F(weights), I(rowStatus), summary, rows);

    public void TopK(ArrayView<float> logits, ArrayView<int> indices, ArrayView<float> probs, ArrayView<ulong> scratch,
        ArrayView<int> rowStatus, TopKParams p)
    {
        if (p.Rows > 0)
            _topK.Value(PerRow(p.Rows), F(logits), I(indices), F(probs), scratch, I(rowStatus), p);
    }

    public void EmaStep(ArrayView<double> ratio, ArrayView<double> ema, ArrayView<long> steps, ArrayView<double> losses,
        ArrayView<double> weights, ArrayView<int> status, double decay) =>
        _ema.Value(1, ratio, ema, steps, losses, weights, status, decay);
}

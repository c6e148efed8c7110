using Raft.Kernels;
using Raft.Model;

namespace Raft.Teacher;

/// <summary>
/// The frozen base of a LoRA student as its teacher, with one copy of the weights in memory: every call switches the
/// student's adapters off (<see cref="LoraAdapters.Enabled"/>), scores or samples with the same <see cref="LlamaModel"/>
/// as <see cref="EngineTeacher"/> does, and switches them back on (TRL's <c>disable_adapter()</c>). With the adapters off
/// the model computes exactly the base model, so the scores are a separate frozen copy's, bit for bit.
/// The student must not run at the same time (one model, one set of buffers).
/// </summary>
public sealed class LoraBaseTeacher : ITeacher
{
    private readonly LlamaModel _model;
    private readonly LoraAdapters _adapters;
    private readonly EngineTeacher _engine;

    /// <summary>
    /// Wraps <paramref name="student"/>, which must carry adapters (<see cref="LlamaModel.Lora"/>); its base matrices may be
    /// 16-bit (frozen, as stored), which the teacher then reads as they are. <paramref name="logitsChunkRows"/> as
    /// <see cref="EngineTeacher"/>'s.
    /// </summary>
    public LoraBaseTeacher(LlamaModel student, ILossKernels kernels, int maxBatch = 64, int vocabLimit = 0, int logitsChunkRows = 0)
    {
        ArgumentNullException.ThrowIfNull(student);
        _model = student;
        _adapters = student.Lora ?? throw new ArgumentException("the student has no LoRA adapters: its base is not a separate teacher.", nameof(student));
        _engine = new EngineTeacher(student, kernels, student.IsInferenceOnly ? $"the student's base (LoRA adapters off, {student.WeightsDescription} weights)" : "the student's base (LoRA adapters off)",
            maxBatch, vocabLimit, logitsChunkRows);
    }

    /// <inheritdoc/>
    public string Description => _engine.Description;
    /// <inheritdoc/>
    public int VocabSize => _engine.VocabSize;
    /// <inheritdoc/>
    public int VocabLimit => _engine.VocabLimit;

    private T WithAdaptersOff<T>(Func<T> f)
    {
        if (!ReferenceEquals(_model.Lora, _adapters))
            throw new InvalidOperationException("the student's adapters were replaced after the teacher was made.");
        bool was = _adapters.Enabled;
        _adapters.Enabled = false;
        try { return f(); }
        finally { _adapters.Enabled = was; }
    }

    /// <inheritdoc/>
    public void Score(IReadOnlyList<int[]> contexts, IReadOnlyList<int[]> rollouts, DistillSettings settings, TopKRows into) =>
        WithAdaptersOff(() => { _engine.Score(contexts, rollouts, settings, into); return 0; });

    /// <inheritdoc/>
    public IReadOnlyList<Generation> Generate(IReadOnlyList<int[]> prompts, SamplingOptions options, ulong firstSequenceIndex) =>
        WithAdaptersOff(() => _engine.Generate(prompts, options, firstSequenceIndex));

    /// <inheritdoc/>
    public void Dispose() => _engine.Dispose();
}

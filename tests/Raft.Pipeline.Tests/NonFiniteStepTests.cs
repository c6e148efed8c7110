using Raft.Kernels;
using Raft.Model;
using Raft.Pipeline.Training;
using Raft.Teacher;

namespace Raft.Pipeline.Tests;

public class NonFiniteStepTests
{
    private const string Injected = "model.norm.weight";

    [Fact]
    public void A_non_finite_step_is_skipped_counted_and_leaves_the_weights_alone()
    {
        using var tmp = new TempDir();
        var model = TinyModels.Model(seed: 4);
        TensorSet? afterStep2 = null;
        float saved = 0;
        var log = new List<string>();
        var trainer = TinyModels.Trainer(model, TinyModels.Sft(5), log: log.Add, afterStep: (m, s) =>
        {
            if (m.Step == 2)
            {
                // A weight goes NaN (as after an overflow): every logit of step 3 is NaN.
                afterStep2 = s.Parameters.Clone();
                saved = s.Parameters[Injected].Data[0];
                s.Parameters[Injected].Data[0] = float.NaN;
            }
            if (m.Step == 3)
            {
                Assert.True(m.Skipped);
                Assert.True(float.IsNaN(s.Parameters[Injected].Data[0]));
                s.Parameters[Injected].Data[0] = saved;
                // Skipped: nothing but the injected value differs from the weights after step 2.
                TinyModels.AssertBitwiseEqual(afterStep2!, s.Parameters);
            }
        });
        var result = trainer.Run(tmp.Path);

        Assert.Equal(1, result.SkippedSteps);
        Assert.Equal([false, false, true, false, false], result.Metrics.Select(m => m.Skipped));
        Assert.Contains(log, l => l.StartsWith("step 3: non-finite", StringComparison.Ordinal) && l.Contains("1 in a row"));
        Assert.True(TinyModels.MaxAbsDiff(afterStep2!, model.Parameters) > 0, "steps 4-5 did not train");
        Assert.DoesNotContain(TinyModels.Flatten(model.Parameters), x => !float.IsFinite(x));
        // The skipped step is in metrics.jsonl too, one line per step.
        var lines = File.ReadAllLines(tmp.File(Trainer.MetricsFile));
        Assert.Equal(5, lines.Length);
        Assert.Contains("\"skipped\":true", lines[2]);
    }

    [Fact]
    public void Too_many_non_finite_steps_in_a_row_stop_the_run()
    {
        using var tmp = new TempDir();
        var model = TinyModels.Model(seed: 4);
        TensorSet? afterStep1 = null;
        var progress = new List<StepMetrics>();
        var trainer = TinyModels.Trainer(model, TinyModels.Sft(10) with { MaxNonFiniteSteps = 3 }, progress: (_, _, m) => progress.Add(m),
            afterStep: (m, s) =>
            {
                if (m.Step != 1) return;
                afterStep1 = s.Parameters.Clone();
                s.Parameters[Injected].Data[0] = float.NaN;
            });
        var e = Assert.Throws<TrainingException>(() => trainer.Run(tmp.Path));
        Assert.Contains("max_nonfinite_steps = 3", e.Message);
        Assert.Contains("step 4", e.Message);
        Assert.Equal([false, true, true], progress.Select(m => m.Skipped));

        // Nothing but the injected value ever went non-finite, and nothing else moved after step 1.
        var weights = model.Parameters.Clone();
        Assert.Single(TinyModels.Flatten(weights), x => !float.IsFinite(x));
        weights[Injected].Data[0] = afterStep1![Injected].Data[0];
        TinyModels.AssertBitwiseEqual(afterStep1, weights);
    }

    /// <summary>
    /// A teacher whose logits turn NaN from a given call on (as an fp16 teacher overflowing): its top-K kernel raises
    /// <see cref="NonFiniteLogitException"/>, as every <see cref="ILossKernels.TopKSoftmax"/> does on a non-finite logit.
    /// </summary>
    private sealed class NaNTeacher(ITeacher inner, int fromCall) : ITeacher
    {
        private int _calls;
        public string Description => "nan " + inner.Description;
        public int VocabSize => inner.VocabSize;
        public int VocabLimit => inner.VocabLimit;
        public void Score(IReadOnlyList<int[]> contexts, IReadOnlyList<int[]> rollouts, DistillSettings settings, TopKRows into)
        {
            if (++_calls >= fromCall) throw new NonFiniteLogitException("teacherLogits", 0, 0, float.NaN);
            inner.Score(contexts, rollouts, settings, into);
        }
        public IReadOnlyList<Generation> Generate(IReadOnlyList<int[]> prompts, SamplingOptions options, ulong firstSequenceIndex) =>
            inner.Generate(prompts, options, firstSequenceIndex);
        public void Dispose() => inner.Dispose();
    }

    [Fact]
    public void Non_finite_teacher_probabilities_make_a_skipped_step_not_a_crash()
    {
        var model = TinyModels.Model(seed: 9);
        using var teacher = new NaNTeacher(TinyModels.Teacher(model), fromCall: 2);
        TensorSet? afterStep1 = null;
        var progress = new List<StepMetrics>();
        var trainer = TinyModels.Trainer(model, TinyModels.Raft(6) with { MaxNonFiniteSteps = 2 }, teacher,
            afterStep: (m, s) => { if (m.Step == 1) afterStep1 = s.Parameters.Clone(); },
            progress: (_, _, m) => progress.Add(m));
        var e = Assert.Throws<TrainingException>(() => trainer.Run());
        Assert.Contains("2 non-finite steps in a row", e.Message);
        Assert.Equal([false, true], progress.Select(m => m.Skipped));
        TinyModels.AssertBitwiseEqual(afterStep1!, model.Parameters);
    }

    [Fact]
    public void A_teacher_whose_forward_overflows_makes_skipped_steps_not_a_crash()
    {
        // The real path: the engine teacher's own logits go NaN (a NaN in its final norm), its top-K kernel raises
        // NonFiniteLogitException, and the step builder turns that into a skipped step.
        var model = TinyModels.Model(seed: 9);
        var broken = TinyModels.Copy(model);
        broken.Parameters[Injected].Data[0] = float.NaN;
        using var teacher = new EngineTeacher(broken, new CpuKernels(1), "engine (overflowing)");
        var before = model.Parameters.Clone();
        var progress = new List<StepMetrics>();
        var trainer = TinyModels.Trainer(model, TinyModels.Raft(6) with { MaxNonFiniteSteps = 2 }, teacher, progress: (_, _, m) => progress.Add(m));
        var e = Assert.Throws<TrainingException>(() => trainer.Run());
        Assert.Contains("2 non-finite steps in a row", e.Message);
        Assert.Contains("stopped at step 2", e.Message);
        Assert.Equal([true], progress.Select(m => m.Skipped)); // the second throws before it is reported
        Assert.All(progress, m => Assert.True(double.IsNaN(m.KdLoss!.Value)));
        TinyModels.AssertBitwiseEqual(before, model.Parameters);
    }
}

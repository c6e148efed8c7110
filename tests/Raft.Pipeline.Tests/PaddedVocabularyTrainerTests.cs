using Raft.Kernels;
using Raft.Model;
using Raft.Model.Tokenization;
using Raft.Pipeline.Data;
using Raft.Pipeline.Refine;
using Raft.Pipeline.Training;
using Raft.Teacher;

namespace Raft.Pipeline.Tests;

/// <summary>
/// A student whose embedding has padding rows beyond its tokenizer (as Qwen2.5/Qwen3 do): rollouts, the teacher's top-K,
/// the SFT targets and stage 1's rewrites never hold an id the tokenizer lacks, even with large random padding rows and
/// sampling at temperature ≥ 1.
/// </summary>
public class PaddedVocabularyTrainerTests
{
    private static readonly int Tokens = ByteTokenizer.Instance.VocabSize; // 263

    /// <summary>A tied model of 300 rows over the byte tokenizer; rows ≥ 263 are large random rows (their logits dominate).</summary>
    private static LlamaModel Padded(int seed)
    {
        var model = LlamaModel.CreateRandom(TinyModels.Config() with { VocabSize = 300 }, seed);
        var embed = model.Parameters["model.embed_tokens.weight"].Data;
        int d = model.Config.HiddenSize;
        var rng = new Random(seed);
        for (int row = Tokens; row < 300; row++)
            for (int j = 0; j < d; j++) embed[row * d + j] = (float)(3 * Gauss.Next(rng));
        return model;
    }

    /// <summary>Records what the trainer gives the teacher and what the teacher writes.</summary>
    private sealed class Recording(ITeacher inner) : ITeacher
    {
        public List<int> RolloutIds { get; } = [];
        public List<int> TopKIds { get; } = [];
        public string Description => inner.Description;
        public int VocabSize => inner.VocabSize;
        public int VocabLimit => inner.VocabLimit;
        public void Score(IReadOnlyList<int[]> contexts, IReadOnlyList<int[]> rollouts, DistillSettings settings, TopKRows into)
        {
            inner.Score(contexts, rollouts, settings, into);
            for (int b = 0; b < rollouts.Count; b++)
            {
                RolloutIds.AddRange(rollouts[b]);
                TopKIds.AddRange(into.IndicesOf(b, rollouts[b].Length).ToArray());
            }
        }
        public IReadOnlyList<Generation> Generate(IReadOnlyList<int[]> prompts, SamplingOptions options, ulong firstSequenceIndex) =>
            inner.Generate(prompts, options, firstSequenceIndex);
        public void Dispose() => inner.Dispose();
    }

    [Fact]
    public void Raft_rollouts_and_teacher_top_k_stay_inside_the_tokenizer()
    {
        int seed = Environment.TickCount;
        var student = Padded(seed);
        var frozen = TinyModels.Copy(student);
        using var teacher = new Recording(new EngineTeacher(frozen, new CpuKernels(1), "engine (padded)", vocabLimit: Tokens));
        var options = TinyModels.Raft(3) with { RolloutTemperature = 1.5f, RolloutsPerPrompt = 2, RolloutMaxTokens = 8, TopK = 16, Seed = seed };
        TinyModels.Trainer(student, options, teacher).Run();
        Assert.NotEmpty(teacher.RolloutIds);
        Assert.All(teacher.RolloutIds, t => Assert.InRange(t, 0, Tokens - 1));
        Assert.All(teacher.TopKIds, t => Assert.InRange(t, 0, Tokens - 1));

        // the test has teeth: the same model samples padding ids when nothing limits it
        var prompt = ChatTemplate.Raft.Encode(ByteTokenizer.Instance, [ChatMessage.User("What is 2+3?")], addGenerationPrompt: true).Ids;
        var free = Generator.Generate(frozen, Enumerable.Repeat(prompt, 8).ToArray(), new SamplingOptions { Temperature = 1.5f, MaxNewTokens = 8, Seed = 1 });
        Assert.Contains(free.SelectMany(g => g.Tokens), t => t >= Tokens);
    }

    [Fact]
    public void A_teacher_that_could_pick_padding_ids_is_refused_by_name()
    {
        var student = Padded(3);
        using var teacher = new EngineTeacher(TinyModels.Copy(student), new CpuKernels(1));
        var e = Assert.Throws<ArgumentException>(() => TinyModels.Trainer(student, TinyModels.Raft(1), teacher));
        Assert.Contains("give the teacher vocabLimit 263", e.Message);
        using var limited = new EngineTeacher(TinyModels.Copy(student), new CpuKernels(1), vocabLimit: Tokens);
        e = Assert.Throws<ArgumentException>(() => TinyModels.Trainer(student, TinyModels.Raft(1) with { TopK = 280 }, limited));
        Assert.Contains("top_k = 280: must be ≤ the tokenizer's 263 tokens", e.Message);
    }

    [Fact]
    public void Stage_one_rewrites_never_hold_a_padding_id()
    {
        var teacherModel = Padded(11);
        var ids = new List<int>();
        using var teacher = new GenerationRecorder(new EngineTeacher(teacherModel, new CpuKernels(1)), ids);
        var refiner = new Refiner(teacher, ByteTokenizer.Instance, ChatTemplate.Raft,
            new RefineOptions { Candidates = 4, Temperature = 1.5f, MaxNewTokens = 8, Seed = 2, Extractor = null, SimilarityThreshold = 0 });
        refiner.Run([new DomainExample("a", "Flip 12.", "21"), new DomainExample("b", "Flip 34.", "43")]);
        Assert.NotEmpty(ids);
        Assert.All(ids, t => Assert.InRange(t, 0, Tokens - 1));
    }

    private sealed class GenerationRecorder(ITeacher inner, List<int> ids) : ITeacher
    {
        public string Description => inner.Description;
        public int VocabSize => inner.VocabSize;
        public int VocabLimit => inner.VocabLimit;
        public void Score(IReadOnlyList<int[]> contexts, IReadOnlyList<int[]> rollouts, DistillSettings settings, TopKRows into) =>
            inner.Score(contexts, rollouts, settings, into);
        public IReadOnlyList<Generation> Generate(IReadOnlyList<int[]> prompts, SamplingOptions options, ulong firstSequenceIndex)
        {
            var g = inner.Generate(prompts, options, firstSequenceIndex);
            foreach (var x in g) ids.AddRange(x.Tokens);
            return g;
        }
        public void Dispose() => inner.Dispose();
    }
}

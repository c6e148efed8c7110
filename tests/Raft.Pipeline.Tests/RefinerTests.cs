using Raft.Model;
using Raft.Model.Tokenization;
using Raft.Pipeline.Data;
using Raft.Pipeline.Refine;
using Raft.Pipeline.Training;
using Raft.Teacher;

namespace Raft.Pipeline.Tests;

public class RefinerTests
{
    /// <summary>A teacher that "writes" fixed candidate texts per call, recording what it was asked.</summary>
    private sealed class ScriptedTeacher(Func<int, string> candidateText) : ITeacher
    {
        public List<(int Prompts, ulong FirstSequenceIndex, SamplingOptions Options)> Calls { get; } = [];
        public string Description => "scripted";
        public int VocabSize => ByteTokenizer.Instance.VocabSize;
        public int VocabLimit => VocabSize;
        public void Score(IReadOnlyList<int[]> contexts, IReadOnlyList<int[]> rollouts, Raft.Kernels.DistillSettings settings, TopKRows into) =>
            throw new NotSupportedException();
        public IReadOnlyList<Generation> Generate(IReadOnlyList<int[]> prompts, SamplingOptions options, ulong firstSequenceIndex)
        {
            Calls.Add((prompts.Count, firstSequenceIndex, options));
            return prompts.Select((_, i) =>
            {
                var ids = ByteTokenizer.Instance.Encode(candidateText(i));
                return new Generation([.. ids, ByteTokenizer.Instance.SpecialId(ByteTokenizer.End)], new float[ids.Length + 1], new float[ids.Length + 1], StopReason.StopToken);
            }).ToArray();
        }
        public void Dispose() { }
    }

    private static readonly DomainExample[] Examples =
    [
        new("a", "Flip 123.", "ok so ~~ 321 ~~ that's it", "data.jsonl", 1),
        new("b", "Flip 45.", "ok so ~~ 54 ~~ that's it", "data.jsonl", 2),
    ];

    // Example a: candidate 0 kept (low similarity), 1 kept (closest to the reference), 2 wrong answer, 3 empty.
    // Example b: every candidate rejected.
    private static readonly string[][] Texts =
    [
        ["The answer is 321.", "so ~~ 321 ~~ that's it", "The answer is 322.", "  "],
        ["The answer is 45.", "no number here", "ok so ~~ 54 ~~ that's it but the answer is 9", ""],
    ];

    [Fact]
    public void Fusion_picks_the_most_similar_kept_candidate_or_falls_back_to_the_reference()
    {
        var teacher = new ScriptedTeacher(i => Texts[i / 4][i % 4]);
        var refiner = new Refiner(teacher, ByteTokenizer.Instance, ChatTemplate.Raft, new RefineOptions { Candidates = 4, SimilarityThreshold = 0.05 });
        var (refined, summary) = refiner.Run(Examples, firstIndex: 10);

        var call = Assert.Single(teacher.Calls);
        Assert.Equal(8, call.Prompts);
        Assert.Equal(10UL * 4, call.FirstSequenceIndex);

        var a = refined[0];
        Assert.Equal("rewrite", a.FusedFrom);
        Assert.Equal(1, a.Chosen);
        Assert.Equal("so ~~ 321 ~~ that's it", a.Answer);
        Assert.Equal(Examples[0].Answer, a.Reference);
        Assert.Equal("data.jsonl:1", a.Source);
        Assert.Equal([true, true, false, false], a.Candidates.Select(c => c.Kept));
        Assert.Null(a.Candidates[0].Reason);
        Assert.StartsWith("answer_match:last_number: answer mismatch: candidate 322, reference 321", a.Candidates[2].Reason);
        Assert.StartsWith("nonempty:", a.Candidates[3].Reason);
        Assert.True(a.Candidates[1].Scores["similarity:char_ngram_cosine"] > a.Candidates[0].Scores["similarity:char_ngram_cosine"]);

        var b = refined[1];
        Assert.Equal("reference", b.FusedFrom);
        Assert.Null(b.Chosen);
        Assert.Equal(Examples[1].Answer, b.Answer);
        Assert.All(b.Candidates, c => { Assert.False(c.Kept); Assert.False(string.IsNullOrEmpty(c.Reason)); });
        Assert.Contains("no answer found in candidate", b.Candidates[1].Reason);

        Assert.Equal(2, summary.Examples);
        Assert.Equal(8, summary.Candidates);
        Assert.Equal(2, summary.Kept);
        Assert.Equal(6, summary.Rejected);
        Assert.Equal(1, summary.FusedRewrite);
        Assert.Equal(1, summary.Fallback);
        Assert.Equal(4, summary.RejectedByRule["answer_match:last_number"]);
        Assert.Equal(2, summary.RejectedByRule["nonempty"]);
        Assert.Equal(6, summary.RejectedByRule.Values.Sum());
    }

    [Fact]
    public void Candidate_j_of_example_i_is_requested_at_sequence_index_first_plus_i_times_n_plus_j()
    {
        var teacher = new ScriptedTeacher(_ => "The answer is 1.");
        var refiner = new Refiner(teacher, ByteTokenizer.Instance, ChatTemplate.Raft, new RefineOptions { Candidates = 3 });
        var five = Enumerable.Range(0, 5).Select(i => new DomainExample($"x{i}", $"Flip {i}1.", $"1{i}")).ToArray();
        refiner.Run(five, firstIndex: 7, batchExamples: 2);
        Assert.Equal([(2, 21UL), (2, 27UL), (1, 33UL)], teacher.Calls.Select(c => (c.Prompts / 3, c.FirstSequenceIndex)));
    }

    [Fact]
    public void Batching_does_not_change_the_output_of_a_sampling_teacher()
    {
        var teacherModel = TinyModels.Model(seed: 17);
        using var teacher = TinyModels.Teacher(teacherModel);
        var options = new RefineOptions { Candidates = 2, Temperature = 1.0f, MaxNewTokens = 6, Seed = 5, Extractor = null, SimilarityThreshold = 0 };
        var refiner = new Refiner(teacher, ByteTokenizer.Instance, ChatTemplate.Raft, options);
        var three = Enumerable.Range(0, 3).Select(i => new DomainExample($"x{i}", $"Flip {i}2.", $"2{i}")).ToArray();
        var (one, _) = refiner.Run(three, batchExamples: 1);
        var (all, _) = refiner.Run(three, batchExamples: 16);
        string Texts(IReadOnlyList<RefinedExample> r) => string.Join("\n", r.SelectMany(e => e.Candidates.Select(c => c.Text)));
        Assert.Equal(Texts(all), Texts(one));
        Assert.Equal(all.Select(e => e.Answer), one.Select(e => e.Answer));
        // Sampling at temperature 1 from a random model: candidates differ from each other (so the check is not vacuous).
        Assert.True(all.SelectMany(e => e.Candidates.Select(c => c.Text)).Distinct().Count() > 3, Texts(all));
    }
}

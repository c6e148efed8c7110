using Raft.Model.Tokenization;
using Raft.Pipeline.Training;

namespace Raft.Pipeline.Tests;

/// <summary><see cref="TrainOptions.MaxLength"/> (issue #16 part 5): over-long examples truncated and counted instead of refused.</summary>
public class MaxLengthTests
{
    private static readonly ChatTemplate Template = ChatTemplate.Raft;
    private static readonly ITokenizer Tok = ByteTokenizer.Instance;

    /// <summary>TinyModels.Data with two long answers (over the tiny model's 96 positions) and one long prompt.</summary>
    private static TrainExample[] LongData { get; } =
    [
        .. TinyModels.Data.Take(5),
        new("What is 9+9?", "The answer is 18, because nine and nine make eighteen, which is one ten and eight ones, as anyone can count on their fingers."),
        new("Say it twice.", string.Concat(Enumerable.Repeat("again and ", 12)) + "done."),
        new(string.Concat(Enumerable.Repeat("a very long question ", 6)) + "?", "Yes."),
    ];

    private static (int[] Ids, bool[] Mask) Full(TrainExample e)
    {
        var f = Template.Encode(Tok, [ChatMessage.User(e.Prompt), ChatMessage.Assistant(e.Answer)]);
        return (f.Ids, f.AssistantMask);
    }

    private static int[] Prompt(TrainExample e) => Template.Encode(Tok, [ChatMessage.User(e.Prompt)], addGenerationPrompt: true).Ids;

    [Fact]
    public void Over_long_examples_are_truncated_and_counted_not_refused()
    {
        const int n = 40;
        int longer = LongData.Count(e => Full(e).Ids.Length > n);
        int promptTooLong = LongData.Count(e => Array.IndexOf(Full(e).Mask, true) >= n);
        Assert.True(longer >= 3 && promptTooLong == 1, $"the fixture should have over-long examples ({longer}, {promptTooLong})");
        var data = TrainData.Encode(LongData, Tok, Template, TinyModels.Sft(1) with { MaxLength = n }, maxPositions: 96);
        // the long prompt's short answer fits whole once the prompt lost its start: it is no answer cut
        Assert.Equal(new TruncationReport(n, longer, longer - promptTooLong, promptTooLong, 0, 0), data.Truncation);
        Assert.All(data.Examples, e => Assert.True(e.Full.Length <= n));

        // the default limit, the model's 96 positions: the two long answers are cut where they used to be refused
        int over96 = LongData.Count(e => Full(e).Ids.Length > 96);
        Assert.True(over96 >= 2);
        var lines = new List<string>();
        var model = TinyModels.Model(seed: 5);
        var result = TinyModels.Trainer(model, TinyModels.Sft(2), data: LongData, log: lines.Add).Run();
        Assert.Equal(over96, result.Truncation!.Truncated);
        Assert.Equal(96, result.Truncation.MaxLength);
        Assert.Contains(lines, l => l.StartsWith($"max_length 96 (the model's max_position_embeddings): {over96} of {LongData.Length} examples truncated", StringComparison.Ordinal));
        Assert.All(result.Metrics, m => Assert.False(m.Skipped));
    }

    [Fact]
    public void The_answer_loses_its_end_and_the_loss_mask_follows_it()
    {
        const int n = 40;
        var e = LongData[5];
        var (ids, mask) = Full(e);
        int answerStart = Array.IndexOf(mask, true);
        Assert.InRange(answerStart, 2, n - 2);   // the prompt fits, the answer does not
        var options = TinyModels.Sft(1) with { MaxLength = n };
        var data = TrainData.Encode([e], Tok, Template, options, maxPositions: 96);
        var got = data.Examples[0];
        Assert.Equal(ids[..n], got.Full);
        Assert.Equal(mask[..n], got.Mask);

        // the packed cross-entropy targets: the next token where the mask is set, within the n positions, −100 elsewhere
        var batch = new StepBuilder(data, options, options.Distill, null, 0).Build([0], TinyModels.Model(), 0);
        Assert.Equal(n - 1, batch.SeqLen);
        for (int p = 0; p < n - 1; p++)
            Assert.Equal(mask[p + 1] ? ids[p + 1] : -100, batch.Targets[p]);
        Assert.Equal(mask[1..n].Count(m => m), (int)batch.CeCount());
    }

    [Fact]
    public void A_prompt_that_leaves_no_room_loses_its_start()
    {
        const int n = 40;
        var e = LongData[7];
        var (ids, mask) = Full(e);
        int answerStart = Array.IndexOf(mask, true);
        Assert.True(answerStart >= n);
        var options = TinyModels.Raft(1) with { MaxLength = n };
        var data = TrainData.Encode([e], Tok, Template, options, maxPositions: 96);
        var got = data.Examples[0];
        // the prompt's last n/2 tokens, then the answer (short: it fits whole)
        int drop = answerStart - n / 2;
        Assert.Equal(ids[drop..], got.Full);
        Assert.Equal(mask[drop..], got.Mask);
        Assert.Equal(n / 2, Array.IndexOf(got.Mask, true));
        // the rollout prompt: its last n/2 tokens (the generation prompt stays), room for the rest
        var prompt = Prompt(e);
        Assert.True(prompt.Length >= n);
        Assert.Equal(prompt[^(n / 2)..], got.Prompt);
        Assert.Equal(Math.Min(options.RolloutMaxTokens, n - n / 2), got.RolloutRoom);
        Assert.Equal(1, data.Truncation.PromptCut);
    }

    [Fact]
    public void Training_on_truncated_examples_is_training_on_the_pretruncated_sequences()
    {
        const int n = 40;
        var options = TinyModels.Sft(3) with { MaxLength = n };
        var a = TinyModels.Model(seed: 5);
        var b = TinyModels.Copy(a);
        TinyModels.Trainer(a, options, data: LongData).Run();
        // the same sequences cut by hand (first n tokens; the long prompt's start as documented), trained without a limit
        var cut = LongData.Select(e =>
        {
            var (ids, mask) = Full(e);
            int start = Array.IndexOf(mask, true) is int s && s >= n ? s - n / 2 : 0;
            int end = Math.Min(ids.Length, start + n);
            return new EncodedExample(Prompt(e), ids[start..end], mask[start..end], Prompt(e));
        }).ToArray();
        var pre = TrainData.FromEncoded(cut, Tok, Template, 96);
        new Trainer(b, Tok, Template, LongData, TinyModels.Sft(3), null, new Raft.Kernels.CpuKernels(1), pre).Run();
        TinyModels.AssertBitwiseEqual(a.Parameters, b.Parameters);
    }

    [Fact]
    public void Rollouts_are_limited_so_that_prompt_and_rollout_fit()
    {
        const int n = 24;
        var options = TinyModels.Raft(1) with { MaxLength = n, RolloutMaxTokens = 20, RolloutTemperature = 1f };
        var data = TrainData.Encode(TinyModels.Data, Tok, Template, options, maxPositions: 96);
        Assert.All(data.Examples, e => Assert.Equal(Math.Min(20, n - e.Prompt.Length), e.RolloutRoom));
        Assert.True(data.Truncation.RolloutsShortened > 0);
        var model = TinyModels.Model(seed: 5);
        using var teacher = TinyModels.Teacher(model);
        var batch = new StepBuilder(data, options, options.Distill, teacher, 0).Build([0, 1, 2, 3, 4, 5, 6, 7], model, 0);
        for (int s = 0; s < batch.KdSequences; s++)
        {
            int rollout = (int)batch.RowWeights.AsSpan(s * batch.SeqLen, batch.SeqLen).ToArray().Sum();
            Assert.InRange(data.Examples[s].Prompt.Length + rollout, 1, n);
        }
        Assert.True(batch.SeqLen <= n - 1);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_limit_everything_fits_changes_nothing_and_one_beyond_the_model_is_refused(bool raft)
    {
        var options = raft ? TinyModels.Raft(2) : TinyModels.Sft(2);
        var a = TinyModels.Model(seed: 5);
        var b = TinyModels.Copy(a);
        using var ta = raft ? TinyModels.Teacher(a) : null;
        using var tb = raft ? TinyModels.Teacher(b) : null;
        TinyModels.Trainer(a, options, ta).Run();
        var result = TinyModels.Trainer(b, options with { MaxLength = 90 }, tb).Run();
        Assert.Equal(0, result.Truncation!.Truncated);
        TinyModels.AssertBitwiseEqual(a.Parameters, b.Parameters);

        var e = Assert.Throws<ArgumentException>(() => TinyModels.Trainer(TinyModels.Model(), options with { MaxLength = 97 }, ta));
        Assert.Equal("max_length", e.ParamName);
        Assert.Contains("max_position_embeddings 96", e.Message);
        Assert.Equal("max_length", Assert.Throws<ArgumentException>(() => (options with { MaxLength = 1 }).Validate()).ParamName);
    }
}

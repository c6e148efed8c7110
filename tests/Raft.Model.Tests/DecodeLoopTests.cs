namespace Raft.Model.Tests;

public class DecodeLoopTests
{
    private const int Vocab = 6;

    /// <summary>Logits [b, vocab] whose argmax in row i is <paramref name="argmax"/>[i].</summary>
    private static float[] Peaks(params int[] argmax)
    {
        var l = new float[argmax.Length * Vocab];
        for (int i = 0; i < argmax.Length; i++)
            for (int v = 0; v < Vocab; v++) l[i * Vocab + v] = v == argmax[i] ? 3f : 0.1f * v;
        return l;
    }

    [Fact]
    public void StopRulesApplyInOrderPerRowAndFinishedRowsFeedZero()
    {
        // greedy; each row's next token is scripted per step. Row 0 meets stop id 5 at step 1; rows 1 and 3 reach
        // MaxNewTokens = 4 at the step where the room (4) also ends, and MaxNewTokens wins; row 2 produces stop id 5 as
        // its 4th token, and the stop rule wins.
        int[][] script =
        [
            [1, 2, 3, 4],   // step 0 tokens per row
            [5, 2, 3, 4],   // step 1
            [1, 2, 3, 4],   // step 2
            [1, 2, 5, 4],   // step 3
        ];
        var options = SamplingOptions.Greedy with { MaxNewTokens = 4, StopTokenIds = [5] };
        var fed = new List<int[]>();
        int step = 0;
        var result = DecodeLoop.Run(Peaks(script[0]), Vocab, [0, 1, 2, 3], 0, room: 4, options, tokens =>
        {
            fed.Add((int[])tokens.Clone());
            step++;
            return Peaks(script[step]);
        });
        Assert.Equal([1, 5], result[0].Tokens);
        Assert.Equal(StopReason.StopToken, result[0].Reason);
        Assert.Equal([2, 2, 2, 2], result[1].Tokens);
        Assert.Equal(StopReason.MaxNewTokens, result[1].Reason);
        Assert.Equal([3, 3, 3, 5], result[2].Tokens);
        Assert.Equal(StopReason.StopToken, result[2].Reason);
        Assert.Equal(StopReason.MaxNewTokens, result[3].Reason);
        // three steps fed (the fourth token ends every row); row 0 is done after step 1 and then feeds 0
        Assert.Equal(3, fed.Count);
        Assert.Equal([1, 2, 3, 4], fed[0]);
        Assert.Equal([5, 2, 3, 4], fed[1]);
        Assert.Equal([0, 2, 3, 4], fed[2]);
        Assert.All(result, g => Assert.Equal(g.Tokens.Length, g.LogProbs.Length));
        Assert.All(result, g => Assert.Equal(g.Tokens.Length, g.ModelLogProbs.Length));
    }

    [Fact]
    public void TheRoomEndsARowWithContextFull()
    {
        var options = SamplingOptions.Greedy with { MaxNewTokens = 10 };
        Assert.Equal(3, DecodeLoop.Room(options, maxPositions: 8, promptLength: 5));
        Assert.Equal(10, DecodeLoop.Room(options, maxPositions: int.MaxValue, promptLength: 5));
        int steps = 0;
        var result = DecodeLoop.Run(Peaks(1), Vocab, [0], 0, room: 3, options, _ => { steps++; return Peaks(2); });
        Assert.Equal([1, 2, 2], result[0].Tokens);
        Assert.Equal(StopReason.ContextFull, result[0].Reason);
        Assert.Equal(2, steps);
    }

    [Fact]
    public void EachTokenIsSampledWithTheKeyOfItsGlobalIndexAndStep()
    {
        var options = new SamplingOptions { Temperature = 1.1f, TopK = 4, TopP = 0.9f, MaxNewTokens = 5, Seed = 77 };
        int[] members = [3, 0, 7];
        const ulong first = 100;
        var rows = new List<float[]>();   // the logits each step handed to the loop, [3, vocab]
        var rng = new Random(5);
        float[] Next()
        {
            var l = new float[members.Length * Vocab];
            for (int i = 0; i < l.Length; i++) l[i] = (float)(rng.NextDouble() * 4 - 2);
            rows.Add(l);
            return l;
        }
        var result = DecodeLoop.Run(Next(), Vocab, members, first, room: 5, options, _ => Next());
        for (int i = 0; i < members.Length; i++)
        {
            Assert.Equal(5, result[i].Tokens.Length);
            for (int s = 0; s < 5; s++)
            {
                var expected = Sampler.Sample(rows[s].AsSpan(i * Vocab, Vocab), options, first + (ulong)members[i], (ulong)s);
                Assert.Equal(expected.TokenId, result[i].Tokens[s]);
                Assert.Equal(expected.LogProb, result[i].LogProbs[s]);
                Assert.Equal(expected.ModelLogProb, result[i].ModelLogProbs[s]);
            }
        }
    }

    [Fact]
    public void BadArgumentsAreNamed()
    {
        var ok = SamplingOptions.Greedy;
        float[] F(int[] _) => Peaks(1);
        Assert.Throws<ArgumentNullException>(() => DecodeLoop.Run(null!, Vocab, [0], 0, 1, ok, F));
        Assert.Throws<ArgumentNullException>(() => DecodeLoop.Run(Peaks(1), Vocab, null!, 0, 1, ok, F));
        Assert.Throws<ArgumentNullException>(() => DecodeLoop.Run(Peaks(1), Vocab, [0], 0, 1, null!, F));
        Assert.Throws<ArgumentNullException>(() => DecodeLoop.Run(Peaks(1), Vocab, [0], 0, 1, ok, null!));
        Assert.Equal("members", Assert.Throws<ArgumentException>(() => DecodeLoop.Run(Peaks(1), Vocab, [], 0, 1, ok, F)).ParamName);
        Assert.Equal("room", Assert.Throws<ArgumentOutOfRangeException>(() => DecodeLoop.Run(Peaks(1), Vocab, [0], 0, 0, ok, F)).ParamName);
        Assert.Equal("vocab", Assert.Throws<ArgumentOutOfRangeException>(() => DecodeLoop.Run(Peaks(1), 0, [0], 0, 1, ok, F)).ParamName);
        Assert.Equal("logits", Assert.Throws<ArgumentException>(() => DecodeLoop.Run(Peaks(1), Vocab, [0, 1], 0, 1, ok, F)).ParamName);
    }
}

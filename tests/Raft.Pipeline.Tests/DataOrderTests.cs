using Raft.Pipeline.Training;

namespace Raft.Pipeline.Tests;

/// <summary>
/// The data order is a pure function of (seed, step): the same in every process, which is what lets a run be resumed in a
/// new process (and, later, sharded across ranks). A per-process randomised hash here once made every process train on
/// another order.
/// </summary>
public class DataOrderTests
{
    // An independent SplitMix64 finaliser over (seed, epoch), written out again here.
    private static int Seed(int seed, int epoch)
    {
        ulong x = (((ulong)(uint)seed) << 32) + (uint)epoch;
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return (int)((x ^ (x >> 31)) & 0x7FFFFFFF);
    }

    [Theory]
    [InlineData(1, 8, 4)]
    [InlineData(7, 8, 3)]
    [InlineData(-5, 8, 5)]
    public void Batches_follow_a_seeded_shuffle_per_epoch_that_depends_on_nothing_else(int seed, int examples, int batch)
    {
        var data = TinyModels.Data.Take(examples).ToArray();
        var trainer = TinyModels.Trainer(TinyModels.Model(), TinyModels.Sft(10) with { Seed = seed, BatchSize = batch }, data: data);
        var expected = new List<int>();
        for (int epoch = 0; expected.Count < 10 * batch; epoch++)
        {
            var order = Enumerable.Range(0, examples).ToArray();
            new Random(Seed(seed, epoch)).Shuffle(order);
            expected.AddRange(order);
        }
        var actual = Enumerable.Range(0, 10).SelectMany(trainer.BatchIndices).ToArray();
        Assert.Equal(expected.Take(10 * batch), actual);
        // Every epoch visits every example once.
        for (int e = 0; e + examples <= actual.Length; e += examples)
            Assert.Equal(Enumerable.Range(0, examples), actual.Skip(e).Take(examples).Order());
    }

    [Fact]
    public void Different_seeds_give_different_orders()
    {
        var a = TinyModels.Trainer(TinyModels.Model(), TinyModels.Sft(4) with { Seed = 1 });
        var b = TinyModels.Trainer(TinyModels.Model(), TinyModels.Sft(4) with { Seed = 2 });
        Assert.NotEqual(Enumerable.Range(0, 4).SelectMany(a.BatchIndices), Enumerable.Range(0, 4).SelectMany(b.BatchIndices));
    }
}

namespace Raft.Model.Tests;

public class AdamWShardTests
{
    // Tensors of awkward sizes (a slice boundary falls inside most of them), decayed and not, one longer than a block.
    private static TensorSet Parameters(int seed)
    {
        var random = new Random(seed);
        var set = new TensorSet();
        foreach (var (name, shape) in new (string, int[])[]
                 {
                     ("model.embed_tokens.weight", [7, 5]), ("model.layers.0.input_layernorm.weight", [5]),
                     ("model.layers.0.mlp.up_proj.weight", [181, 193]), ("model.norm.weight", [13]), ("lm_head.bias", [3]),
                 })
        {
            var data = new float[shape.Aggregate(1, (a, b) => a * b)];
            for (int i = 0; i < data.Length; i++) data[i] = (float)(random.NextDouble() * 2 - 1);
            set.Add(new Tensor(name, shape, data));
        }
        return set;
    }

    private static float[] Flat(TensorSet set) => set.Tensors.SelectMany(t => t.Data).ToArray();

    private static readonly AdamWOptions Options = new() { Beta1 = 0.9, Beta2 = 0.95, WeightDecay = 0.1 };
    private static LearningRateSchedule Schedule() => new() { PeakLearningRate = 1e-2, MinLearningRate = 1e-3, WarmupSteps = 1, TotalSteps = 5, Decay = LearningRateDecay.Cosine };

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    public void ShardsTogetherGiveTheFullOptimizersBitsPerElement(int shards)
    {
        var full = Parameters(1);
        var sharded = full.Clone();
        var optimizer = new AdamW(full, Options, Schedule());
        long total = full.Tensors.Sum(t => (long)t.Length), chunk = (total + shards - 1) / shards;
        var slices = Enumerable.Range(0, shards)
            .Select(r => new AdamWShard(sharded, Options, Schedule(), Math.Min(r * chunk, total), Math.Min(chunk, total - Math.Min(r * chunk, total))))
            .ToArray();
        for (int step = 0; step < 4; step++)
        {
            var gradients = Parameters(100 + step);
            var flatGradient = Flat(gradients);
            Assert.Equal(optimizer.CurrentLearningRate, slices[0].CurrentLearningRate);
            optimizer.Update(gradients);
            foreach (var s in slices) s.Update(flatGradient.AsMemory((int)s.Start, (int)s.Length));
        }
        Assert.Equal(Flat(full), Flat(sharded));
        Assert.Equal(Flat(optimizer.FirstMoment), slices.SelectMany(s => s.FirstMoment).ToArray());
        Assert.Equal(Flat(optimizer.SecondMoment), slices.SelectMany(s => s.SecondMoment).ToArray());
        Assert.All(slices, s => Assert.Equal(4, s.StepCount));
        Assert.NotEqual(Flat(Parameters(1)), Flat(sharded));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void FrozenTensorsKeepTheirBitsAndTheRestTrainsAsWithoutFreezing(int shards)
    {
        // frozen: a decayed matrix and a norm; trained: the big (decayed) matrix and two undecayed tensors
        static bool Trainable(string name) => name is not ("model.embed_tokens.weight" or "model.layers.0.input_layernorm.weight");
        var initial = Parameters(3);
        var free = initial.Clone();
        var frozen = initial.Clone();
        var sharded = initial.Clone();
        var all = new AdamW(free, Options, Schedule());
        var part = new AdamW(frozen, Options, Schedule());
        Assert.Equal(3, part.SetTrainable(Trainable));
        long total = initial.Tensors.Sum(t => (long)t.Length), chunk = (total + shards - 1) / shards;
        var slices = Enumerable.Range(0, shards)
            .Select(r => new AdamWShard(sharded, Options, Schedule(), Math.Min(r * chunk, total), Math.Min(chunk, total - Math.Min(r * chunk, total))))
            .ToArray();
        foreach (var slice in slices) slice.SetTrainable(Trainable);
        for (int step = 0; step < 3; step++)
        {
            var gradients = Parameters(200 + step);
            var flatGradient = Flat(gradients);
            all.Update(gradients);
            part.Update(gradients);
            foreach (var s in slices) s.Update(flatGradient.AsMemory((int)s.Start, (int)s.Length));
        }
        for (int i = 0; i < initial.Count; i++)
        {
            var name = initial.Tensors[i].Name;
            if (Trainable(name))
            {
                Assert.Equal(free[name].Data, frozen[name].Data);          // unaffected by the other tensors being frozen
                Assert.NotEqual(initial[name].Data, frozen[name].Data);
            }
            else
            {
                Assert.Equal(initial[name].Data, frozen[name].Data);       // no update and no weight decay
                Assert.All(part.FirstMoment[name].Data, m => Assert.Equal(0f, m));
                Assert.All(part.SecondMoment[name].Data, v => Assert.Equal(0f, v));
                Assert.False(part.IsTrainable(i));
            }
        }
        Assert.Equal(Flat(frozen), Flat(sharded));                         // the shards honour the same mask, bit for bit
        Assert.Equal(Flat(part.SecondMoment), slices.SelectMany(s => s.SecondMoment).ToArray());
        // a slice cut from a frozen full optimizer is frozen the same way
        var fromFull = AdamWShard.FromFull(part, 0, total);
        var embedding = frozen["model.embed_tokens.weight"].Data.ToArray();
        var up = frozen["model.layers.0.mlp.up_proj.weight"].Data.ToArray();
        fromFull.Update(Flat(Parameters(300)));
        Assert.Equal(embedding, frozen["model.embed_tokens.weight"].Data);
        Assert.NotEqual(up, frozen["model.layers.0.mlp.up_proj.weight"].Data);
    }

    [Fact]
    public void Slices_of_a_full_optimizer_and_a_full_one_restored_AtStep_continue_as_it_does()
    {
        // Two identical runs of 2 full steps: one goes on whole, the other is cut into slices (a resumed ZeRO-1 run).
        var p1 = Parameters(2);
        var p2 = p1.Clone();
        var o1 = new AdamW(p1, Options, Schedule());
        var o2 = new AdamW(p2, Options, Schedule());
        foreach (var o in new[] { o1, o2 }) { o.Update(Parameters(200)); o.Update(Parameters(201)); }
        var p3 = p1.Clone();
        long total = Flat(p1).Length;
        var a = AdamWShard.FromFull(o2, 0, 1000);
        var b = AdamWShard.FromFull(o2, 1000, total - 1000);
        Assert.Equal(2, a.StepCount);
        Assert.Equal(Flat(o2.FirstMoment)[1000..], b.FirstMoment);

        // The full state assembled from outside (as a checkpoint gathers the slices): o2's moments into a restored optimizer over p3.
        var restored = AdamW.AtStep(p3, o2.Options, o2.Schedule, o2.StepCount);
        for (int i = 0; i < p3.Count; i++)
        {
            o2.FirstMoment.Tensors[i].Data.CopyTo(restored.FirstMoment.Tensors[i].Data, 0);
            o2.SecondMoment.Tensors[i].Data.CopyTo(restored.SecondMoment.Tensors[i].Data, 0);
        }

        var g = Parameters(202);
        var flat = Flat(g);
        o1.Update(g);
        a.Update(flat.AsMemory(0, 1000));
        b.Update(flat.AsMemory(1000));
        restored.Update(g);
        Assert.Equal(Flat(p1), Flat(p2));
        Assert.Equal(Flat(p1), Flat(p3));
        Assert.Equal(Flat(o1.SecondMoment), (float[])[.. a.SecondMoment, .. b.SecondMoment]);
        Assert.Equal(3, restored.StepCount);
    }

    [Fact]
    public void BadSlicesAndGradientsAreRefused()
    {
        var parameters = Parameters(3);
        long total = Flat(parameters).Length;
        Assert.Throws<ArgumentOutOfRangeException>(() => new AdamWShard(parameters, Options, Schedule(), total - 1, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AdamWShard(parameters, Options, Schedule(), -1, 1));
        var shard = new AdamWShard(parameters, Options, Schedule(), 10, 20);
        var e = Assert.Throws<ArgumentException>(() => shard.Update(new float[19]));
        Assert.Contains("gradient holds 19 elements, the slice 20", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => AdamW.AtStep(parameters, Options, Schedule(), -1));
        var empty = new AdamWShard(parameters, Options, Schedule(), total, 0);
        empty.Update(Array.Empty<float>());
        Assert.Equal(1, empty.StepCount);
    }
}

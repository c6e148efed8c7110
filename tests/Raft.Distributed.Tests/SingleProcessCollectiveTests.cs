namespace Raft.Distributed.Tests;

public class SingleProcessCollectiveTests
{
    private static float[] RandomData(Random random, int length)
    {
        var data = new float[length];
        for (int i = 0; i < length; i++) data[i] = (float)(random.NextDouble() * 2 - 1);
        return data;
    }

    public static TheoryData<int> Lengths => new() { 1, 7, 1001, 65537 };

    [Theory]
    [MemberData(nameof(Lengths))]
    public void ReductionsOverOneRankAreTheIdentity(int length)
    {
        var random = new Random();
        using ICollective c = new SingleProcessCollective();
        Assert.Equal((0, 1, "none"), (c.Rank, c.WorldSize, c.Backend));
        Assert.False(string.IsNullOrEmpty(c.HostName));

        var original = RandomData(random, length);
        var data = (float[])original.Clone();
        c.AllReduceSum(data);
        Assert.Equal(original, data);
        c.AllReduceMean(data);
        Assert.Equal(original, data);
        c.Broadcast(data, root: 0);
        Assert.Equal(original, data);

        var doubles = original.Select(x => (double)x * 1e3).ToArray();
        var copy = (double[])doubles.Clone();
        foreach (var op in Enum.GetValues<ReduceOp>()) c.AllReduce(doubles, op);
        Assert.Equal(copy, doubles);

        var bytes = new byte[length];
        random.NextBytes(bytes);
        var bytesCopy = (byte[])bytes.Clone();
        c.Broadcast(bytes, 0);
        Assert.Equal(bytesCopy, bytes);

        var receive = new float[length];
        c.ReduceScatterSum(original, receive);
        Assert.Equal(original, receive);
        var gathered = new float[length];
        c.AllGather(original, gathered);
        Assert.Equal(original, gathered);
        c.Barrier();
    }

    [Fact]
    public void WrongArgumentsAreRejectedWithTheirNames()
    {
        using var c = new SingleProcessCollective();
        Assert.Equal("root", Assert.Throws<ArgumentOutOfRangeException>(() => c.Broadcast(new float[3], 1)).ParamName);
        Assert.Equal("root", Assert.Throws<ArgumentOutOfRangeException>(() => c.Broadcast(new byte[3], -1)).ParamName);
        var e = Assert.Throws<ArgumentException>(() => c.ReduceScatterSum(new float[4], new float[3]));
        Assert.Equal("send", e.ParamName);
        Assert.Contains("ChunkLength", e.Message);
        Assert.Equal("receive", Assert.Throws<ArgumentException>(() => c.AllGather(new float[4], new float[5])).ParamName);
        var shared = new float[8];
        Assert.Equal("receive", Assert.Throws<ArgumentException>(() => c.AllGather(shared.AsSpan(0, 4), shared.AsSpan(2, 4))).ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => c.AllReduce(new double[1], (ReduceOp)42));
    }
}

public class CollectivesTests
{
    [Fact]
    public void NoneAndAutoWithoutALauncherAreASingleProcess()
    {
        using var none = Collectives.Create("none");
        Assert.IsType<SingleProcessCollective>(none);
        if (Collectives.DetectLauncher() is null)
        {
            using var auto = Collectives.Create();
            Assert.IsType<SingleProcessCollective>(auto);
        }
    }

    [Fact]
    public void AnUnknownKindNamesTheChoices()
    {
        var e = Assert.Throws<ArgumentException>(() => Collectives.Create("gloo"));
        Assert.Equal("kind", e.ParamName);
        Assert.Contains("'gloo'", e.Message);
        Assert.Contains("auto, none, mpi, nccl", e.Message);
    }

    [Theory]
    [InlineData("OMPI_COMM_WORLD_SIZE", "2", "mpirun")]
    [InlineData("PMIX_RANK", "0", "PMIx")]
    [InlineData("PMI_SIZE", "4", "PMI")]
    public void TheLauncherIsDetectedFromItsVariables(string variable, string value, string expected)
    {
        var env = new Dictionary<string, string> { [variable] = value };
        Assert.Contains(expected, Collectives.DetectLauncher(k => env.GetValueOrDefault(k)));
    }

    [Fact]
    public void SlurmCountsAsALaunchOnlyWithPmi()
    {
        var env = new Dictionary<string, string> { ["SLURM_NTASKS"] = "8" };
        Assert.Null(Collectives.DetectLauncher(k => env.GetValueOrDefault(k)));
        env["PMI_FD"] = "5";
        Assert.Contains("srun", Collectives.DetectLauncher(k => env.GetValueOrDefault(k)));
        Assert.Null(Collectives.DetectLauncher(_ => null));
    }

    [Theory]
    [InlineData(0, 2, 0)]
    [InlineData(1, 2, 1)]
    [InlineData(7, 2, 4)]
    [InlineData(65537, 2, 32769)]
    [InlineData(1001, 8, 126)]
    [InlineData(16, 8, 2)]
    public void ChunkLengthRoundsUp(long length, int world, long chunk) => Assert.Equal(chunk, Collectives.ChunkLength(length, world));

    [Fact]
    public void OptionsAreChecked()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Collectives.Create("none", new CollectiveOptions { TimeoutSeconds = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => Collectives.Create("none", new CollectiveOptions { MaxElementsPerCall = 0 }));
    }

    [Fact]
    public void MpiIsReportedWithTheLibraryAndThePackagesWhenAbsent()
    {
        if (MpiCollective.IsLibraryAvailable)
        {
            Assert.Equal("", MpiCollective.LibraryUnavailableReason);
            return;
        }
        var e = Assert.Throws<CollectiveUnavailableException>(() => Collectives.Create("mpi"));
        Assert.Contains("libmpi.so.40", e.Message);
        Assert.Contains("openmpi-bin libopenmpi-dev", e.Message);
    }
}

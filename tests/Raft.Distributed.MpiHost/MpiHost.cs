using Raft.Distributed;

/// <summary>The scenarios; each returns its number of failed checks and prints one PASS or FAIL line per check.</summary>
internal sealed class MpiHost(MpiCollective mpi)
{
    private static readonly int[] Lengths = [1, 7, 1001, 65537];
    private int _failures;

    private int Rank => mpi.Rank;
    private int World => mpi.WorldSize;

    /// <summary>Rank <paramref name="rank"/>'s input for check <paramref name="salt"/>: any rank can regenerate any other's.</summary>
    private static float[] Data(int rank, int length, int salt)
    {
        var random = new Random(Seed(20240917, rank, length, salt));
        var data = new float[length];
        for (int i = 0; i < length; i++) data[i] = (float)(random.NextDouble() * 2 - 1);
        return data;
    }

    private static double[] DataDouble(int rank, int length, int salt)
    {
        var random = new Random(Seed(77, rank, length, salt));
        var data = new double[length];
        for (int i = 0; i < length; i++) data[i] = random.NextDouble() * 200 - 100;
        return data;
    }

    /// <summary>A deterministic seed (HashCode.Combine is randomized per process, so every rank would disagree).</summary>
    private static int Seed(int a, int rank, int length, int salt) =>
        (int)((uint)(a ^ (rank * 1_000_003) ^ (length * 7919) ^ (salt * 104_729)) & 0x7fffffff);

    private void Report(string name, bool ok, string detail = "")
    {
        Console.WriteLine($"{(ok ? "PASS" : "FAIL")} rank {Rank} {name}{(detail.Length > 0 ? " " + detail : "")}");
        if (!ok) _failures++;
    }

    private void Compare(string name, ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, float tolerance = 1e-5f)
    {
        if (actual.Length != expected.Length)
        {
            Report(name, false, $"length {actual.Length} != {expected.Length}");
            return;
        }
        for (int i = 0; i < actual.Length; i++)
        {
            float diff = MathF.Abs(actual[i] - expected[i]);
            if (!(diff <= tolerance * MathF.Max(1, MathF.Abs(expected[i]))))
            {
                Report(name, false, $"at {i}: {actual[i]} != {expected[i]}");
                return;
            }
        }
        Report(name, true);
    }

    private void Compare(string name, ReadOnlySpan<double> actual, ReadOnlySpan<double> expected)
    {
        for (int i = 0; i < actual.Length; i++)
        {
            if (!(Math.Abs(actual[i] - expected[i]) <= 1e-12 * Math.Max(1, Math.Abs(expected[i]))))
            {
                Report(name, false, $"at {i}: {actual[i]} != {expected[i]}");
                return;
            }
        }
        Report(name, true);
    }

    /// <summary>Sum over ranks of Data(r, length, salt), in rank order (in double, then rounded).</summary>
    private float[] ExpectedSum(int length, int salt)
    {
        var sum = new double[length];
        for (int r = 0; r < World; r++)
        {
            var d = Data(r, length, salt);
            for (int i = 0; i < length; i++) sum[i] += d[i];
        }
        return [.. sum.Select(x => (float)x)];
    }

    public int Collectives()
    {
        foreach (int n in Lengths)
        {
            var data = Data(Rank, n, 1);
            mpi.AllReduceSum(data);
            Compare($"AllReduceSum n={n}", data, ExpectedSum(n, 1));

            data = Data(Rank, n, 2);
            mpi.AllReduceMean(data);
            Compare($"AllReduceMean n={n}", data, [.. ExpectedSum(n, 2).Select(x => x / World)]);

            foreach (var op in new[] { ReduceOp.Sum, ReduceOp.Max, ReduceOp.Min })
            {
                var d = DataDouble(Rank, n, 3 + (int)op);
                mpi.AllReduce(d, op);
                var expected = DataDouble(0, n, 3 + (int)op);
                for (int r = 1; r < World; r++)
                {
                    var other = DataDouble(r, n, 3 + (int)op);
                    for (int i = 0; i < n; i++)
                        expected[i] = op switch { ReduceOp.Sum => expected[i] + other[i], ReduceOp.Max => Math.Max(expected[i], other[i]), _ => Math.Min(expected[i], other[i]) };
                }
                Compare($"AllReduce(double, {op}) n={n}", d, expected);
            }

            foreach (int root in new[] { 0, World - 1 })
            {
                data = Data(Rank, n, 10 + root);
                mpi.Broadcast(data, root);
                Compare($"Broadcast(float, root {root}) n={n}", data, Data(root, n, 10 + root), 0);

                var bytes = new byte[n];
                new Random(Rank * 7919 + n).NextBytes(bytes);
                mpi.Broadcast(bytes, root);
                var expectedBytes = new byte[n];
                new Random(root * 7919 + n).NextBytes(expectedBytes);
                Report($"Broadcast(byte, root {root}) n={n}", bytes.AsSpan().SequenceEqual(expectedBytes));
            }

            // Reduce-scatter with the padding rule: chunk = ceil(n / world), zeros past n.
            int chunk = (int)Raft.Distributed.Collectives.ChunkLength(n, World);
            var send = new float[chunk * World];
            Data(Rank, n, 20).CopyTo(send, 0);
            var receive = new float[chunk];
            mpi.ReduceScatterSum(send, receive);
            var padded = new float[chunk * World];
            ExpectedSum(n, 20).CopyTo(padded, 0);
            Compare($"ReduceScatterSum n={n} chunk={chunk}", receive, padded.AsSpan(Rank * chunk, chunk));

            // All-gather the reduce-scattered chunks: the padded full sum on every rank.
            var gathered = new float[chunk * World];
            mpi.AllGather(receive, gathered);
            Compare($"ReduceScatter+AllGather n={n}", gathered, padded);

            var mine = Data(Rank, n, 30);
            var all = new float[n * World];
            mpi.AllGather(mine, all);
            var expectedAll = new float[n * World];
            for (int r = 0; r < World; r++) Data(r, n, 30).CopyTo(expectedAll, r * n);
            Compare($"AllGather n={n}", all, expectedAll, 0);

            var buffers = new[] { Data(Rank, n, 40), Data(Rank, 3, 41 + n), Data(Rank, 2 * n + 1, 42) };
            new GradientBucketer(mpi, buffers, bucketElements: 1000).AllReduceMean();
            Compare($"GradientBucketer n={n} [0]", buffers[0], [.. ExpectedSum(n, 40).Select(x => x / World)]);
            Compare($"GradientBucketer n={n} [1]", buffers[1], [.. ExpectedSum(3, 41 + n).Select(x => x / World)]);
            Compare($"GradientBucketer n={n} [2]", buffers[2], [.. ExpectedSum(2 * n + 1, 42).Select(x => x / World)]);
        }

        var empty = Array.Empty<float>();
        mpi.AllReduceSum(empty);
        mpi.Barrier();
        Report("empty buffer and barrier", true);
        return _failures;
    }

    public unsafe int Errors()
    {
        var api = MpiApi.Instance;
        float x = 0;
        try
        {
            api.Check(api.MPI_Bcast(&x, -1, api.Float, 0, api.CommWorld), "MPI_Bcast");
            Report("negative count raises MpiException", false, "no exception");
        }
        catch (MpiException e)
        {
            Console.WriteLine($"rank {Rank}: {e.Message}");
            Report("negative count raises MpiException", e.Call == "MPI_Bcast" && e.ErrorCode != 0 && e.ErrorString.Length > 0 && e.Message.Contains("MPI_Bcast"));
        }
        try
        {
            mpi.Broadcast(new float[3], World);
            Report("root out of range is an argument error", false);
        }
        catch (ArgumentOutOfRangeException e)
        {
            Report("root out of range is an argument error", e.ParamName == "root");
        }
        return _failures;
    }

    public int Throw()
    {
        Raft.Distributed.Collectives.AbortJobOnUnhandledException(mpi);
        mpi.Barrier();
        if (Rank == 1) throw new InvalidOperationException("deliberate failure on rank 1");
        mpi.Barrier(); // the other ranks wait here until MPI_Abort ends the job
        Report("reached after a peer failed", false);
        return _failures;
    }

    public int Timeout()
    {
        mpi.Barrier();
        if (Rank == 1) Thread.Sleep(TimeSpan.FromSeconds(20));
        mpi.Barrier(); // rank 0's watchdog fires here
        Report("reached after the timeout", false);
        return _failures;
    }
}

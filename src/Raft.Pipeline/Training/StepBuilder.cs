using System.Diagnostics;
using Raft.Kernels;
using Raft.Model;
using Raft.Teacher;

namespace Raft.Pipeline.Training;

/// <summary>
/// Builds a step's <see cref="PackedBatch"/>: for RAFT, the student's on-policy rollouts (<see cref="Generator"/>, seeded
/// by the global sequence index so a resumed run or another rank samples what one uninterrupted process would), the
/// answer-conditioned teacher's top-K written straight into the packed [KdRows, K] buffers, then the answer sequences
/// with their cross-entropy targets.
/// </summary>
internal sealed class StepBuilder(TrainData data, TrainOptions options, DistillSettings distill, ITeacher? teacher, int padId)
{
    /// <summary>
    /// The batch of <paramref name="examples"/> (this rank's slice of a step's batch), rollouts sampled by
    /// <paramref name="student"/> (whose weights must be current). <paramref name="firstSequence"/> is the global index of
    /// this rank's first rollout.
    /// </summary>
    public PackedBatch Build(int[] examples, LlamaModel student, ulong firstSequence)
    {
        var t0 = Stopwatch.GetTimestamp();
        bool raft = options.Method == TrainMethod.Raft;
        var kd = new List<(int[] Tokens, int PromptLen)>();
        int[][] contexts = [], rollouts = [];
        double rolloutTokens = 0, rolloutSeconds = 0;
        if (raft)
        {
            int r = options.RolloutsPerPrompt;
            var prompts = new int[examples.Length * r][];
            for (int i = 0; i < examples.Length; i++)
                for (int j = 0; j < r; j++) prompts[i * r + j] = data.Examples[examples[i]].Prompt;
            // Each example's rollouts may have RolloutRoom tokens (rollout_max_tokens, or fewer where max_length or the
            // teacher's positions leave less room): sampled to the batch's largest room, each cut to its own. A row's tokens do
            // not depend on the other rows (its randomness is keyed by its global index), so the cut rollout is the one a
            // generation stopped at its room would give.
            int most = 1;
            foreach (int i in examples) most = Math.Max(most, data.Examples[i].RolloutRoom);
            var sampling = new SamplingOptions
            {
                Temperature = options.RolloutTemperature, MaxNewTokens = most, StopTokenIds = data.StopIds, Seed = (ulong)options.Seed,
                VocabLimit = data.VocabLimit,
            };
            var gens = Generator.Generate(student, prompts, sampling, firstSequenceIndex: firstSequence);
            contexts = new int[prompts.Length][];
            rollouts = new int[prompts.Length][];
            for (int i = 0; i < prompts.Length; i++)
            {
                contexts[i] = data.Examples[examples[i / r]].TeacherContext;
                int room = data.Examples[examples[i / r]].RolloutRoom;
                rollouts[i] = gens[i].Tokens.Length <= room ? gens[i].Tokens : gens[i].Tokens[..room];
                rolloutTokens += rollouts[i].Length;
                kd.Add(([.. prompts[i], .. rollouts[i]], prompts[i].Length));
            }
            rolloutSeconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }

        int t = 1;
        foreach (var (tokens, _) in kd) t = Math.Max(t, tokens.Length - 1);
        foreach (int i in examples) t = Math.Max(t, data.Examples[i].Full.Length - 1);
        int nKd = kd.Count, nSft = examples.Length, rowsKd = nKd * t;
        var inputs = new int[(nKd + nSft) * t];
        Array.Fill(inputs, padId);
        long tokensTrained = 0;
        for (int s = 0; s < nKd; s++)
        {
            kd[s].Tokens.AsSpan(0, kd[s].Tokens.Length - 1).CopyTo(inputs.AsSpan(s * t));
            tokensTrained += kd[s].Tokens.Length - 1;
        }
        var targets = new int[nSft * t];
        Array.Fill(targets, -100);
        for (int s = 0; s < nSft; s++)
        {
            var e = data.Examples[examples[s]];
            e.Full.AsSpan(0, e.Full.Length - 1).CopyTo(inputs.AsSpan((nKd + s) * t));
            for (int p = 0; p + 1 < e.Full.Length; p++)
                if (e.Mask[p + 1]) targets[s * t + p] = e.Full[p + 1];
            tokensTrained += e.Full.Length - 1;
        }

        if (!raft) return new PackedBatch { Inputs = inputs, SeqLen = t, KdSequences = 0, SftSequences = nSft, Targets = targets, Tokens = tokensTrained };

        // The teacher's row j of rollout s predicts rollout token j: the student row of position promptLen − 1 + j.
        int k = distill.TopK;
        var firstRow = new int[nKd];
        var weights = new float[rowsKd];
        for (int s = 0; s < nKd; s++)
        {
            firstRow[s] = s * t + kd[s].PromptLen - 1;
            weights.AsSpan(firstRow[s], rollouts[s].Length).Fill(1f);
        }
        var into = new TopKRows(new int[rowsKd * k], new float[rowsKd * k], k, firstRow);
        bool teacherFinite = true;
        try { teacher!.Score(contexts, rollouts, distill, into); }
        catch (NonFiniteLogitException) { teacherFinite = false; } // an overflowing teacher makes a non-finite step, skipped like one
        double teacherSeconds = Stopwatch.GetElapsedTime(t0).TotalSeconds - rolloutSeconds;
        return new PackedBatch
        {
            Inputs = inputs, SeqLen = t, KdSequences = nKd, SftSequences = nSft, Targets = targets, Tokens = tokensTrained,
            TeacherIndices = into.Indices, TeacherProbs = into.Probs, RowWeights = weights, RolloutTokens = rolloutTokens,
            TeacherFinite = teacherFinite, RolloutSeconds = rolloutSeconds, TeacherSeconds = teacherSeconds,
        };
    }
}

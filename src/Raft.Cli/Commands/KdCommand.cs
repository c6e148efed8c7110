using System.CommandLine;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Raft.Kernels;

namespace Raft.Cli.Commands;

/// <summary>
/// <c>raft kd</c>: one top-K temperature distillation step on logits from .npy files (or generated ones):
/// teacher logits [rows, vocab] → top-K softmax at τ → loss (and gradient) of student logits [rows, vocab].
/// Prints one line of JSON; optionally writes the gradient [rows, vocab] as .npy.
/// </summary>
internal static class KdCommand
{
    /// <summary>The options of one <c>kd</c> command instance (fresh per parser, so parsers never share symbols).</summary>
    private sealed class KdOptions
    {
        public readonly Option<string?> Student = new("--student")
        {
            Description = "Student logits: .npy float32 ('<f4'), C order, shape [rows, vocab].",
            HelpName = "S.npy",
        };
        public readonly Option<string?> Teacher = new("--teacher")
        {
            Description = "Teacher logits: .npy float32, same shape as --student.",
            HelpName = "T.npy",
        };
        public readonly Option<int> TopK = new("--top-k")
        {
            Description = "K: teacher entries kept per row (1..vocab).",
            DefaultValueFactory = _ => 64,
            HelpName = "N",
        };
        public readonly Option<float> Temperature = new("--temperature")
        {
            Description = "τ > 0, applied to teacher and student logits; the loss is scaled by τ².",
            DefaultValueFactory = _ => 2f,
            HelpName = "N",
        };
        // --loss-kind and --jsd-beta, spelled as raft train's flags and config keys; --loss and --beta, kd's first
        // spellings, stay readable (hidden, no warning) so that existing scripts keep working.
        public readonly Option<string> Loss = new("--loss-kind")
        {
            Description = "Divergence: forward-kl (KL(teacher‖student), as RAFT trains), reverse-kl (on the teacher's top-K support) or jsd (generalized JSD with --jsd-beta).",
            DefaultValueFactory = _ => DistillLossKinds.Name(DistillLossKind.ForwardKL),
            HelpName = DistillLossKinds.HelpName,
        };
        public readonly Option<string?> LossAlias = new("--loss") { Hidden = true };
        public readonly Option<float> Beta = new("--jsd-beta")
        {
            Description = "β ∈ [0, 1] of --loss-kind jsd (0 = forward KL, 1 = reverse KL); ignored by the other kinds.",
            DefaultValueFactory = _ => 0.5f,
            HelpName = "N",
        };
        public readonly Option<float?> BetaAlias = new("--beta") { Hidden = true };
        public readonly Option<string?> Weights = new("--weights")
        {
            Description = "Optional per-row weights: .npy float32, shape [rows], finite and ≥ 0 (default: all 1). The loss is Σ w·L / Σ w.",
            HelpName = "W.npy",
        };
        public readonly Option<string?> GradOut = new("--grad-out")
        {
            Description = "Write the gradient of the loss w.r.t. the student logits here (.npy float32 [rows, vocab]), atomically.",
            HelpName = "G.npy",
        };
        public readonly Option<int?> Threads = new("--threads")
        {
            Description = "Worker threads for the CPU kernels (default: all cores).",
            HelpName = "N",
        };
        public readonly Option<string> Device = new("--device")
        {
            Description = DeviceOption.Help,
            DefaultValueFactory = _ => ComputeDevices.Name(ComputeDevice.Auto),
            HelpName = DeviceOption.HelpName,
        };
        public readonly Option<bool> Example = new("--example")
        {
            Description = "Generate random student logits and teacher = student + noise in memory (seeded) instead of reading files.",
        };
        public readonly Option<int> Rows = new("--rows")
        {
            Description = "Rows of the --example logits.",
            DefaultValueFactory = _ => 64,
            HelpName = "N",
        };
        public readonly Option<int> Vocab = new("--vocab")
        {
            Description = "Vocabulary size of the --example logits.",
            DefaultValueFactory = _ => 32000,
            HelpName = "N",
        };
        public readonly Option<int> Seed = new("--seed")
        {
            Description = "Random seed of --example.",
            DefaultValueFactory = _ => 1,
            HelpName = "N",
        };
        public readonly Option<string?> WriteExample = new("--write-example")
        {
            Description = "With --example: also write the generated inputs to DIR/student.npy and DIR/teacher.npy.",
            HelpName = "DIR",
        };
    }

    /// <summary>Creates the <c>kd</c> subcommand.</summary>
    public static Command Create()
    {
        var o = new KdOptions();
        var command = new Command("kd",
            "Top-K temperature knowledge distillation on logits: teacher [rows, vocab] → top-K softmax at τ → " +
            "loss of student [rows, vocab] (and its gradient with --grad-out). Prints one JSON line: " +
            "{\"loss\", \"rows\", \"vocab\", \"top_k\", \"temperature\", \"loss_kind\", \"jsd_beta\", \"kernels\", \"seconds\"}.");
        foreach (Option option in (Option[])[o.Student, o.Teacher, o.TopK, o.Temperature, o.Loss, o.LossAlias, o.Beta, o.BetaAlias, o.Weights, o.GradOut,
                     o.Threads, o.Device, o.Example, o.Rows, o.Vocab, o.Seed, o.WriteExample])
            command.Options.Add(option);
        command.SetAction(parse => Execute(parse, o));
        return command;
    }

    /// <summary>What one run computed.</summary>
    internal readonly record struct KdOutcome(LossResult Result, int Rows, int Vocab, DistillSettings Config, string Kernels, double Seconds);

    private static int Execute(ParseResult parse, KdOptions o)
    {
        var stdout = parse.InvocationConfiguration.Output;

        // Options that need no file: checked before anything is read.
        int topK = parse.GetValue(o.TopK);
        float temperature = parse.GetValue(o.Temperature);
        if (!(temperature > 0f) || !float.IsFinite(temperature))
            throw new UsageException($"--temperature must be a finite number > 0, got {Format(temperature)}.");
        string lossFlag = Spelled(parse, o.Loss, o.LossAlias), betaFlag = Spelled(parse, o.Beta, o.BetaAlias);
        DistillLossKind kind = ParseLoss(CliChecks.IsGiven(parse, o.LossAlias) ? parse.GetValue(o.LossAlias) : parse.GetValue(o.Loss), lossFlag);
        float beta = CliChecks.IsGiven(parse, o.BetaAlias) ? parse.GetValue(o.BetaAlias)!.Value : parse.GetValue(o.Beta);
        if (!(beta >= 0f && beta <= 1f))
            throw new UsageException($"{betaFlag} must be in [0, 1], got {Format(beta)}.");
        int? threads = parse.GetValue(o.Threads);
        if (threads is < 1)
            throw new UsageException($"--threads must be ≥ 1, got {threads}.");
        ComputeDevice device = parse.GetValue(o.Device) is { } deviceText ? DeviceOption.Parse(deviceText) : ComputeDevice.Auto;
        string? gradOut = parse.GetValue(o.GradOut);
        if (gradOut is not null) CliChecks.CheckOutputFile("--grad-out", gradOut);
        string? weightsPath = parse.GetValue(o.Weights);
        if (weightsPath is not null) CliChecks.CheckInputFile("--weights", weightsPath);
        CliChecks.CheckOutputsApart(
            [new("--student", parse.GetValue(o.Student)), new("--teacher", parse.GetValue(o.Teacher)), new("--weights", weightsPath)],
            [new("--grad-out", gradOut), new("--write-example", parse.GetValue(o.WriteExample))]);

        float[] student, teacher;
        int rows, vocab;
        string studentName, teacherName;
        if (parse.GetValue(o.Example))
        {
            foreach (var option in (Option[])[o.Student, o.Teacher])
                if (CliChecks.IsGiven(parse, option))
                    throw new UsageException($"{option.Name} cannot be combined with --example (the example generates its own logits).");
            rows = parse.GetValue(o.Rows);
            vocab = parse.GetValue(o.Vocab);
            int seed = parse.GetValue(o.Seed);
            if (rows < 1) throw new UsageException($"--rows must be ≥ 1, got {rows}.");
            if (vocab < 1) throw new UsageException($"--vocab must be ≥ 1, got {vocab}.");
            if ((long)rows * vocab > Array.MaxLength)
                throw new UsageException($"--rows {rows} × --vocab {vocab} is more elements than an array can hold ({Array.MaxLength}).");
            (student, teacher) = ExampleLogits.Generate(rows, vocab, seed);
            studentName = "example student logits";
            teacherName = "example teacher logits";
            if (parse.GetValue(o.WriteExample) is { } dir)
            {
                CreatedFolders.Create(dir);
                NpyFile.WriteFloat32(Path.Combine(dir, "student.npy"), student, rows, vocab);
                NpyFile.WriteFloat32(Path.Combine(dir, "teacher.npy"), teacher, rows, vocab);
            }
        }
        else
        {
            foreach (var option in (Option[])[o.Rows, o.Vocab, o.Seed, o.WriteExample])
                if (CliChecks.IsGiven(parse, option))
                    throw new UsageException($"{option.Name} applies only with --example.");
            studentName = parse.GetValue(o.Student) ?? throw new UsageException("--student is required (or use --example).");
            teacherName = parse.GetValue(o.Teacher) ?? throw new UsageException("--teacher is required (or use --example).");
            CliChecks.CheckInputFile("--student", studentName);
            CliChecks.CheckInputFile("--teacher", teacherName);
            var s = NpyFile.ReadFloat32(studentName, 2, "[rows, vocab]");
            var t = NpyFile.ReadFloat32(teacherName, 2, "[rows, vocab]");
            if (s.Shape[0] != t.Shape[0] || s.Shape[1] != t.Shape[1])
                throw new UsageException(
                    $"{teacherName}: shape {NpyFile.FormatShape([t.Shape[0], t.Shape[1]])} differs from the student's " +
                    $"{NpyFile.FormatShape([s.Shape[0], s.Shape[1]])} ({studentName}).");
            (student, teacher, rows, vocab) = (s.Data, t.Data, s.Shape[0], s.Shape[1]);
        }

        if (topK < 1 || topK > vocab)
            throw new UsageException($"--top-k must be in 1..{vocab} (the vocabulary size of {studentName}), got {topK}.");

        float[]? weights = null;
        if (weightsPath is not null)
        {
            var w = NpyFile.ReadFloat32(weightsPath, 1, "[rows]");
            if (w.Shape[0] != rows)
                throw new UsageException($"{weightsPath}: has {w.Shape[0]} weights, the logits have {rows} rows.");
            for (int r = 0; r < w.Data.Length; r++)
                if (!(w.Data[r] >= 0f) || !float.IsFinite(w.Data[r]))
                    throw new UsageException($"{weightsPath}: weight of row {r} must be finite and ≥ 0, got {Format(w.Data[r])}.");
            weights = w.Data;
        }

        var config = new DistillSettings(topK, temperature, kind, beta);
        using var backend = DeviceOption.Create(device, threads, parse.InvocationConfiguration.Error);
        var kernels = backend.Kernels;
        KdOutcome outcome;
        try
        {
            outcome = Compute(kernels, student, teacher, rows, vocab, config, weights, inPlaceGradient: gradOut is not null);
        }
        catch (Exception ex) when (Unwrap(ex) is NonFiniteLogitException e)
        {
            string file = e.Tensor == "teacherLogits" ? teacherName : studentName;
            throw new UsageException(
                $"{file}: non-finite logit ({Format(e.Value)}) at row {e.Row}{(e.Column >= 0 ? $", column {e.Column}" : "")}.");
        }

        // The gradient was computed in place, into the student buffer.
        if (gradOut is not null) NpyFile.WriteFloat32(gradOut, student, rows, vocab);

        stdout.WriteLine(ToJson(outcome));
        return ExitCodes.Success;
    }

    /// <summary>
    /// Top-K softmax of <paramref name="teacher"/> [rows, vocab], then the distillation loss of
    /// <paramref name="student"/> [rows, vocab]. With <paramref name="inPlaceGradient"/> the gradient
    /// overwrites <paramref name="student"/>. The time covers the two kernel calls.
    /// </summary>
    internal static KdOutcome Compute(ILossKernels kernels, float[] student, float[] teacher, int rows, int vocab,
        DistillSettings config, float[]? weights, bool inPlaceGradient)
    {
        int k = config.TopK;
        var indices = new int[(long)rows * k];
        var probs = new float[(long)rows * k];
        var clock = Stopwatch.StartNew();
        kernels.TopKSoftmax(teacher, rows, vocab, k, config.Temperature, indices, probs);
        var result = kernels.Distill(student, rows, vocab, indices, probs, config, weights,
            inPlaceGradient ? student : Span<float>.Empty);
        double seconds = clock.Elapsed.TotalSeconds;
        return new KdOutcome(result, rows, vocab, config, kernels.Name, seconds);
    }

    /// <summary>The one-line JSON report.</summary>
    internal static string ToJson(KdOutcome o)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (double.IsFinite(o.Result.Loss)) json.WriteNumber("loss", o.Result.Loss);
            else json.WriteNull("loss");
            json.WriteNumber("rows", o.Rows);
            json.WriteNumber("vocab", o.Vocab);
            json.WriteNumber("top_k", o.Config.TopK);
            json.WriteNumber("temperature", o.Config.Temperature);
            json.WriteString("loss_kind", LossName(o.Config.Kind));
            json.WriteNumber("jsd_beta", o.Config.Beta);
            json.WriteString("kernels", o.Kernels);
            json.WriteNumber("seconds", Math.Round(o.Seconds, 6));
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    internal static DistillLossKind ParseLoss(string? value, string flag = "--loss-kind") =>
        DistillLossKinds.TryParse(value, out var kind) ? kind : throw new UsageException($"{flag} must be {DistillLossKinds.Choices}, got '{value}'.");

    internal static string LossName(DistillLossKind kind) => DistillLossKinds.Name(kind);

    /// <summary>The flag the user wrote, of a canonical option and its old hidden spelling; both at once is refused.</summary>
    private static string Spelled(ParseResult parse, Option canonical, Option alias)
    {
        if (!CliChecks.IsGiven(parse, alias)) return canonical.Name;
        if (CliChecks.IsGiven(parse, canonical)) throw new UsageException($"{canonical.Name} and {alias.Name} are one option ({alias.Name} is its old spelling): give one.");
        return alias.Name;
    }

    /// <summary>The single exception inside (nested) aggregates, as parallel kernels may throw them.</summary>
    private static Exception Unwrap(Exception e)
    {
        while (e is AggregateException { InnerExceptions.Count: 1 } aggregate) e = aggregate.InnerExceptions[0];
        return e;
    }

    private static string Format(float value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

using System.Globalization;
using System.Text;
using Raft.Model;
using Raft.Pipeline.Demo.V2;
using Raft.Teacher;

namespace Raft.Cli.Commands;

/// <summary><c>raft demo --world v2</c>: the v2 table (or, with <c>--gap-check</c>, the pre-registered gap check) with 95 % intervals and the targets met or missed.</summary>
internal static class DemoV2Cli
{
    /// <summary>Runs it; <paramref name="basePath"/> must hold a v2 base checkpoint (exit 2 otherwise).</summary>
    public static int Run(DemoV2Options options, string basePath, bool gapCheck, string? outDir, Func<LlamaModel, ITeacher>? teacher,
        TextWriter stdout, TextWriter stderr)
    {
        if (!Directory.Exists(basePath))
            throw new UsageException($"--base {basePath}: no such folder; --world v2 needs the v2 base (models/demo-v2-base of the repository, copied next to the binary by the build; or make one with raft pretrain --world v2, docs/demo.md).");
        var (config, weights) = Checkpoint.Load(basePath);
        if (config.VocabSize != Raft.Model.Tokenization.ByteTokenizer.Instance.VocabSize)
            throw new UsageException($"--base {basePath}: vocab_size {config.VocabSize}; the demo's byte tokenizer has {Raft.Model.Tokenization.ByteTokenizer.Instance.VocabSize}.");
        var baseModel = new LlamaModel(config, weights) { Threads = options.Threads };
        var runner = new DemoV2Runner(options, l => stderr.WriteLine(l), teacher);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var runs = gapCheck ? runner.GapCheck(baseModel) : runner.Run(baseModel);
        var table = DemoV2Runner.Table(runs);
        var md = new StringBuilder();
        md.Append(CultureInfo.InvariantCulture, $"RAFT demo, world v2{(gapCheck ? ", gap check" : "")}: seeds {string.Join(", ", options.Seeds)}, {sw.Elapsed.TotalSeconds:F0} s.\n");
        var b = options.Budget;
        md.Append(CultureInfo.InvariantCulture, $"Budget of every trained row: {b.Steps} steps of {b.BatchSize}, AdamW {b.LearningRate:G3} → {b.MinLearningRate:G3}, trainable {b.Trainable ?? "every parameter"}.\n");
        md.Append(Raft.Pipeline.Eval.IntervalTable.MethodNote).Append("\n\n");
        md.Append(table.ToMarkdown()).Append('\n');
        var checks = gapCheck ? [DemoV2Targets.Gap(table)] : DemoV2Targets.Check(table);
        foreach (var c in checks) md.Append("- ").Append(c.ToString()).Append('\n');
        stdout.WriteLine();
        stdout.Write(md.ToString());
        if (outDir is not null)
        {
            AtomicFile.WriteText(Path.Combine(outDir, "report.md"), md.ToString());
            stdout.WriteLine($"wrote {Path.Combine(outDir, "report.md")}");
        }
        return ExitCodes.Success;
    }
}

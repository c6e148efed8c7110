using System.Text.RegularExpressions;

namespace Raft.Cli.Tests;

/// <summary>
/// The --help of every command listed by <c>raft --help</c> (#19): each default said once (was <c>(default 64). [default: 64]</c>),
/// value placeholders that say what goes there — the allowed words, or N, DIR, FILE, … — never <c>&lt;TEXT&gt;</c> or the
/// option's own name, and the same placeholder for the same option on every command.
/// </summary>
public partial class HelpTextTests : CliHarness
{
    /// <summary>One option of a command's help: its names, its placeholder (null for a flag without a value) and its whole text.</summary>
    internal sealed record HelpEntry(string Command, string Name, string? Placeholder, string Text);

    [GeneratedRegex(@"(?m)^  (?<name>[a-z][a-z-]*)\b")]
    private static partial Regex CommandLine();

    [GeneratedRegex(@"^  (?<names>-\S*?(?:, -\S*?)*)(?: <(?<ph>[^>]*)>)?(?: \(REQUIRED\))?(?:\s{2,}|$)")]
    private static partial Regex OptionLine();

    /// <summary>The commands <c>raft --help</c> lists.</summary>
    internal static IReadOnlyList<string> Commands()
    {
        var r = Raft("--help");
        Assert.True(r.Code == 0, r.ToString());
        string list = r.Stdout[(r.Stdout.IndexOf("Commands:", StringComparison.Ordinal) + "Commands:".Length)..];
        return CommandLine().Matches(list).Select(m => m.Groups["name"].Value).ToArray();
    }

    internal static IReadOnlyList<HelpEntry> Entries(string command)
    {
        var r = Raft(command, "--help");
        Assert.True(r.Code == 0, r.ToString());
        var entries = new List<HelpEntry>();
        bool inOptions = false;
        foreach (string line in r.Stdout.ReplaceLineEndings("\n").Split('\n'))
        {
            if (line.StartsWith("Options:", StringComparison.Ordinal)) { inOptions = true; continue; }
            if (!inOptions || line.Trim().Length == 0) continue;
            if (!line.StartsWith(' ')) { inOptions = false; continue; }
            var m = OptionLine().Match(line);
            if (m.Success)
            {
                string name = m.Groups["names"].Value.Split(", ")[^1];
                entries.Add(new HelpEntry(command, name, m.Groups["ph"].Success ? m.Groups["ph"].Value : null, line.Trim()));
            }
            else
            {
                Assert.True(entries.Count > 0, $"raft {command} --help: a continuation before any option: {line}");
                var last = entries[^1];
                entries[^1] = last with { Text = last.Text + " " + line.Trim() }; // a wrapped description
            }
        }
        Assert.NotEmpty(entries);
        return entries;
    }

    private static IEnumerable<HelpEntry> All() => Commands().SelectMany(Entries);

    [Fact]
    public void Every_command_is_read()
    {
        var commands = Commands();
        foreach (var c in new[] { "demo", "refine", "train", "sft", "eval", "plot", "pretrain", "export-onnx", "export-gguf", "merge-lora", "kd", "chat-template" })
            Assert.Contains(c, commands);
    }

    [Fact]
    public void Each_default_is_said_once()
    {
        var twice = All().Where(e => Regex.Matches(e.Text, @"\bdefault\b", RegexOptions.IgnoreCase).Count > 1)
            .Select(e => $"raft {e.Command} {e.Name}: {e.Text}").ToArray();
        Assert.True(twice.Length == 0, "defaults said twice:\n" + string.Join("\n", twice));
        // the case the issue quotes
        var copy = Assert.Single(Entries("pretrain"), e => e.Name == "--copy-steps");
        Assert.Contains("[default: 2000]", copy.Text);
    }

    [Fact]
    public void No_placeholder_is_TEXT_or_the_options_own_name()
    {
        var vague = All().Where(e => e.Placeholder is { } p && (p == "TEXT" || p == e.Name.TrimStart('-')))
            .Select(e => $"raft {e.Command} {e.Name} <{e.Placeholder}>").ToArray();
        Assert.True(vague.Length == 0, "placeholders that do not say what goes there:\n" + string.Join("\n", vague));
    }

    [Theory]
    [InlineData("--device", "auto|cpu|cuda|cuda-c")]
    [InlineData("--teacher-provider", "auto|cpu|cuda")]
    [InlineData("--collective", "auto|none|mpi|nccl")]
    [InlineData("--precision", "fp32|bf16|fp16")]
    [InlineData("--weights-dtype", "fp32|bf16|fp16")]
    [InlineData("--teacher-weights-dtype", "fp32|bf16|fp16")]
    [InlineData("--base-weights-dtype", "auto|fp32|bf16|fp16")]
    [InlineData("--world", "v1|v2")]
    [InlineData("--trainable", "REGEX")]
    [InlineData("--threads", "N")]
    [InlineData("--learning-rate", "N")]
    public void A_word_option_shows_its_values_on_every_command(string option, string placeholder)
    {
        var entries = All().Where(e => e.Name == option).ToArray();
        Assert.NotEmpty(entries);
        foreach (var e in entries) Assert.True(e.Placeholder == placeholder, $"raft {e.Command} {option} <{e.Placeholder}>, expected <{placeholder}>");
    }

    [Fact]
    public void The_same_option_has_the_same_placeholder_on_every_command()
    {
        // --out is a folder or a file by command; demo's --teacher is how the base serves (onnx|engine), the others' a folder;
        // kd's --rows is the row count of its --example logits, the data commands' a slice of the data file
        string[] differ = ["--out", "--teacher", "--rows"];
        var clashes = All().Where(e => !differ.Contains(e.Name)).GroupBy(e => e.Name)
            .Where(g => g.Select(e => e.Placeholder).Distinct().Count() > 1)
            .Select(g => $"{g.Key}: " + string.Join(", ", g.Select(e => $"{e.Command} <{e.Placeholder}>"))).ToArray();
        Assert.True(clashes.Length == 0, "one option, several placeholders:\n" + string.Join("\n", clashes));
    }
}

using System.Text.RegularExpressions;

namespace Raft.Cli.Tests;

/// <summary>
/// README's tables of exit codes and of what each command reads and writes (#19), checked against the code: every code
/// the CLI returns is in the table and every code in the table is one it returns; every command <c>raft --help</c>
/// lists has a row, every row is a command, and every flag a row names exists on that command.
/// </summary>
public class CommandTablesTests
{
    private static string Readme()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Raft.Tests.slnf"))) return File.ReadAllText(Path.Combine(dir.FullName, "README.md"));
        throw new InvalidOperationException("the repository root (Raft.Tests.slnf) is not above " + AppContext.BaseDirectory);
    }

    /// <summary>The rows of the table after the paragraph that starts with <paramref name="title"/>: cells, trimmed.</summary>
    private static List<string[]> Table(string title)
    {
        string readme = Readme().ReplaceLineEndings("\n");
        int at = readme.IndexOf(title, StringComparison.Ordinal);
        Assert.True(at >= 0, $"README has no {title}");
        var rows = new List<string[]>();
        bool inTable = false;
        foreach (string line in readme[at..].Split('\n').Skip(1))
        {
            if (line.StartsWith('|')) { inTable = true; rows.Add(line.Trim('|').Split('|').Select(c => c.Trim()).ToArray()); }
            else if (inTable) break;
        }
        Assert.True(rows.Count > 2, $"no table after {title}");
        return rows.Skip(2).ToList(); // header and separator
    }

    [Fact]
    public void The_exit_code_table_lists_exactly_the_codes_raft_returns()
    {
        var listed = Table("**Exit codes**").SelectMany(r => r[0].Split(',').Select(c => int.Parse(c.Trim()))).Order().ToArray();
        int[] returned = [ExitCodes.Success, ExitCodes.Failure, ExitCodes.Usage, ExitCodes.Signalled(1), ExitCodes.Signalled(2), ExitCodes.Signalled(15)];
        Assert.Equal(returned.Order().ToArray(), listed);
        // and the meanings of 0, 1, 2 are what the binary does
        Assert.Equal(ExitCodes.Usage, CliHarness_Run("kd", "--top-k", "0", "--example"));
        Assert.Equal(ExitCodes.Success, CliHarness_Run("kd", "--example", "--rows", "2", "--vocab", "50", "--top-k", "4", "--threads", "1", "--device", "cpu"));
        Assert.Equal(ExitCodes.Failure, CliErrors.Report(new IOException("disk full"), TextWriter.Null));
        Assert.Equal(ExitCodes.Usage, CliErrors.Report(new UsageException("bad"), TextWriter.Null));
    }

    private static int CliHarness_Run(params string[] args) => Program.Run(args, new StringWriter(), new StringWriter());

    [Fact]
    public void Every_command_raft_help_lists_has_a_row_and_every_row_is_a_command()
    {
        var rows = Table("**What each command reads and writes**");
        var named = rows.Select(r => Regex.Match(r[0], @"^`raft ([a-z-]+)`$")).ToArray();
        Assert.All(named, m => Assert.True(m.Success, $"a row's first cell is not `raft <command>`: {m.Value}"));
        var inTable = named.Select(m => m.Groups[1].Value).ToArray();
        var commands = HelpTextTests.Commands();
        Assert.Empty(commands.Except(inTable));   // a command without a row
        Assert.Empty(inTable.Except(commands));   // a row without a command
        Assert.Equal(inTable.Length, inTable.Distinct().Count());
    }

    [Fact]
    public void Every_flag_a_row_names_exists_on_its_command()
    {
        foreach (var row in Table("**What each command reads and writes**"))
        {
            string command = Regex.Match(row[0], @"^`raft ([a-z-]+)`$").Groups[1].Value;
            var flags = HelpTextTests.Entries(command).Select(e => e.Name).ToHashSet();
            foreach (Match m in Regex.Matches(row[1] + " " + row[2], @"`(--[a-z-]+)`"))
                Assert.True(flags.Contains(m.Groups[1].Value), $"raft {command} has no {m.Groups[1].Value} (README's table)");
        }
    }
}

using System.CommandLine;
using System.CommandLine.Invocation;

namespace Raft.Cli;

/// <summary>The entry point of the <c>raft</c> binary.</summary>
internal static class Program
{
    private static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>
    /// Parses <paramref name="args"/>, runs the chosen command and returns the process exit code
    /// (<see cref="ExitCodes"/>). Everything a command prints goes to <paramref name="stdout"/> and
    /// <paramref name="stderr"/>, so tests call this in-process.
    /// </summary>
    internal static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ParseResult parsed = RaftCommand.Create().Parse(args);
        if (parsed.Errors.Count > 0 && parsed.Action is ParseErrorAction)
        {
            foreach (var error in parsed.Errors) stderr.WriteLine($"error: {error.Message}");
            stderr.WriteLine("Run 'raft --help' (or 'raft <command> --help') for usage.");
            return ExitCodes.Usage;
        }
        // A command that fails removes the output folders it created while they are still empty (never one that existed).
        using var folders = Raft.Cli.Commands.CreatedFolders.Begin();
        int code;
        try
        {
            code = parsed.Invoke(new InvocationConfiguration
            {
                Output = stdout,
                Error = stderr,
                EnableDefaultExceptionHandler = false,
            });
        }
        catch (Exception e)
        {
            code = CliErrors.Report(e, stderr);
        }
        if (code != ExitCodes.Success) folders.RemoveEmpty();
        return code;
    }
}

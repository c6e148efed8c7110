using Raft.Kernels;

namespace Raft.Cli;

/// <summary>The process exit codes of <c>raft</c>.</summary>
internal static class ExitCodes
{
    /// <summary>The command did what was asked.</summary>
    public const int Success = 0;
    /// <summary>An unexpected failure (I/O error while writing, out of memory, a bug).</summary>
    public const int Failure = 1;
    /// <summary>The user's options or input files are wrong; the message says which and why.</summary>
    public const int Usage = 2;
    /// <summary>Stopped by a signal (SIGHUP 1, SIGINT 2, SIGTERM 15): 128 + the signal's number, as a shell reports it.</summary>
    public static int Signalled(int signal) => 128 + signal;
}

/// <summary>A problem with the options or input the user gave: reported on stderr, exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>Maps exceptions that escape a command to a message on stderr and an exit code.</summary>
internal static class CliErrors
{
    public static int Report(Exception e, TextWriter stderr)
    {
        // Parallel kernels may wrap the real failure.
        while (e is AggregateException { InnerExceptions.Count: 1 } aggregate) e = aggregate.InnerExceptions[0];
        switch (e)
        {
            case UsageException or NpyFormatException or Raft.Model.UnsupportedConfigException or Raft.Pipeline.Training.RunMismatchException:
                stderr.WriteLine($"error: {Clean(e.Message)}");
                return ExitCodes.Usage;
            case NonFiniteLogitException nonFinite:
                stderr.WriteLine($"error: {Clean(nonFinite.Message)}");
                return ExitCodes.Usage;
            case Raft.Pipeline.Data.DataFormatException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException
                or Raft.Model.Tokenization.ChatTemplateException
                // an unsupported tokenizer.json, a GGUF vocabulary llama.cpp would read differently: the input, not a bug (the message names the file)
                or NotSupportedException:
                stderr.WriteLine($"error: {Clean(e.Message)}");
                return ExitCodes.Usage;
            case Raft.Pipeline.Training.TrainingException training:
                stderr.WriteLine($"error: {Clean(training.Message)}");
                return ExitCodes.Failure;
            case IOException io when IsDiskFull(io):
                // an I/O failure (exit 1), said plainly with what to do: the atomic writes kept every earlier file whole
                stderr.WriteLine($"error: no space left on the device ({Clean(io.Message)}); free some space (or choose another --out) " +
                                 "and run the command again: raft train, sft and pretrain continue from their last checkpoint with --resume.");
                return ExitCodes.Failure;
            case IOException io when io.HResult == 30 || io.Message.Contains("Read-only file system", StringComparison.OrdinalIgnoreCase): // EROFS
                stderr.WriteLine($"error: the file system is read-only ({Clean(io.Message)}); make it writable (or choose another --out) " +
                                 "and run the command again: raft train, sft and pretrain continue from their last checkpoint with --resume.");
                return ExitCodes.Failure;
            case IOException io:
                // any other I/O failure (a rename a network file system refused, EIO, …): exit 1, said without the .NET type
                stderr.WriteLine($"error: an I/O operation failed ({Clean(io.Message)}); every file written before it is whole: fix the cause " +
                                 "and run the command again (raft train, sft and pretrain continue from their last checkpoint with --resume).");
                return ExitCodes.Failure;
            case ArgumentException argument:
                stderr.WriteLine($"error: invalid argument: {Clean(WithoutParameter(argument))}");
                return ExitCodes.Usage;
            default:
                stderr.WriteLine($"error: unexpected failure ({e.GetType().FullName}): {Clean(e.Message)}");
                return ExitCodes.Failure;
        }
    }

    /// <summary>ENOSPC or EDQUOT: the disk (or the user's quota) is full. On Unix .NET's IOException carries the errno as HResult.</summary>
    internal static bool IsDiskFull(IOException e) =>
        e.HResult is 28 or 122 || e.Message.Contains("No space left on device", StringComparison.OrdinalIgnoreCase)
                              || e.Message.Contains("Disk quota exceeded", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// A message without the .NET leftovers of an <see cref="ArgumentException"/> wrapped inside it, wherever they are:
    /// " (Parameter 'x')" (a full stop doubled by the cut is dropped too) and an <see cref="ArgumentOutOfRangeException"/>'s
    /// "Actual value was …" line. Every message <see cref="Report"/> prints goes through it.
    /// </summary>
    public static string Clean(string message)
    {
        string s = System.Text.RegularExpressions.Regex.Replace(message, @"\r?\nActual value was [^\r\n]*", "");
        s = System.Text.RegularExpressions.Regex.Replace(s, @"(?<=\.) \(Parameter '[^']*'\)\.", "");
        return System.Text.RegularExpressions.Regex.Replace(s, @" \(Parameter '[^']*'\)", "");
    }

    /// <summary>An <see cref="ArgumentException"/>'s message without .NET's <c>(Parameter 'x')</c> suffix.</summary>
    public static string WithoutParameter(ArgumentException e)
    {
        string suffix = $" (Parameter '{e.ParamName}')";
        return e.ParamName is not null && e.Message.EndsWith(suffix, StringComparison.Ordinal) ? e.Message[..^suffix.Length] : e.Message;
    }
}

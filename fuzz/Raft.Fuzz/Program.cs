using Raft.Fuzz;

// Raft.Fuzz <target>                 one target under libFuzzer (fuzz/driver starts this process; scripts/fuzz.sh)
// Raft.Fuzz <target> --replay DIR    every file of DIR (a corpus, crashes) through the target in-process
// Raft.Fuzz --seed DIR               writes the seed corpora into DIR/<target>/
// Raft.Fuzz --list                   the targets
static int Usage(string problem)
{
    Console.Error.WriteLine($"Raft.Fuzz: {problem}");
    Console.Error.WriteLine("usage: Raft.Fuzz <target> [--replay DIR] | --seed DIR | --list");
    Console.Error.WriteLine($"targets: {string.Join(", ", FuzzTargets.All.Keys)}");
    return 2;
}

if (args is ["--list"])
{
    foreach (var t in FuzzTargets.All.Values) Console.WriteLine($"{t.Name}\t{t.Reads}");
    return 0;
}
if (args is ["--seed", var seedDir])
{
    Seeds.Write(seedDir);
    Console.WriteLine($"seed corpora written to {Path.GetFullPath(seedDir)}");
    return 0;
}
if (args.Length == 0) return Usage("no target given.");
if (!FuzzTargets.All.TryGetValue(args[0], out var target)) return Usage($"unknown target '{args[0]}'.");

if (args is [_, "--replay", var dir])
{
    if (!Directory.Exists(dir)) return Usage($"--replay {dir}: no such directory.");
    var files = Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToArray();
    var watch = System.Diagnostics.Stopwatch.StartNew();
    int read = 0;
    foreach (string file in files)
    {
        try
        {
            if (target.Run(File.ReadAllBytes(file)) is { } refused) Console.WriteLine($"{file}: refused: {refused.Message}");
            else read++;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"{target.Name}: {file}: {e}");
            return 1;
        }
    }
    Console.WriteLine($"{target.Name}: {files.Length} inputs replayed in {watch.Elapsed.TotalSeconds:F1} s, no crash " +
        $"({read} read, {files.Length - read} refused by the parser's typed error).");
    return 0;
}
if (args.Length != 1) return Usage($"unexpected arguments after the target: {string.Join(' ', args[1..])}.");

if (Environment.GetEnvironmentVariable("__LIBFUZZER_SHM_ID") is null)
    return Usage("not started by the libFuzzer driver (fuzz/driver, scripts/fuzz.sh); use --replay DIR to run inputs without it.");
SharpFuzz.Fuzzer.LibFuzzer.Run(data => target.Run(data));
return 0;

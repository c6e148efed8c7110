using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Raft.Model.Tests.Tokenization;

/// <summary>
/// Hugging Face's own JavaScript renderer (<c>@huggingface/jinja</c> 0.5.13, fetched by fetch-tokenizers.sh into
/// huggingface-jinja/index.cjs) run under node by jinja-reference.cjs: one process renders a whole batch of cases.
/// </summary>
internal static class JinjaReference
{
    /// <summary>RAFT_REQUIRE_JINJA_REFERENCE=1: a missing node or renderer fails the tests instead of skipping them (CI).</summary>
    public static bool Required => Environment.GetEnvironmentVariable("RAFT_REQUIRE_JINJA_REFERENCE") == "1";

    public static string RendererPath => Path.Combine(TokenizerFiles.Root, "huggingface-jinja", "index.cjs");

    public static string DriverPath => Path.Combine(AppContext.BaseDirectory, "Tokenization", "jinja-reference.cjs");

    public static string? Node()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
        {
            if (dir.Length == 0) continue;
            string p = Path.Combine(dir, "node");
            if (File.Exists(p)) return p;
        }
        return null;
    }

    // The driver sends strings as base64 of their UTF-16LE code units (lone surrogates survive).
    private static string Utf16(string base64) => new(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, char>(Convert.FromBase64String(base64)));

    /// <summary>A rendered text, or the error the renderer threw.</summary>
    public sealed record Result(string? Text, string? Error);

    /// <summary>Renders each (template index, variables) case of <paramref name="cases"/>.</summary>
    public static List<Result> Render(IReadOnlyList<string> templates, IReadOnlyList<(int Template, JsonObject Vars)> cases)
    {
        string node = Node() ?? throw new InvalidOperationException("node is not on PATH (apt-get install nodejs).");
        Assert.True(File.Exists(RendererPath), $"{RendererPath} is missing: run tests/Raft.Model.Tests/fetch-tokenizers.sh.");
        var input = new JsonObject
        {
            ["templates"] = new JsonArray(templates.Select(t => (JsonNode)JsonValue.Create(t)!).ToArray()),
            ["cases"] = new JsonArray(cases.Select(c => (JsonNode)new JsonObject { ["t"] = c.Template, ["vars"] = c.Vars.DeepClone() }).ToArray()),
        };
        var psi = new ProcessStartInfo(node)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardInputEncoding = new System.Text.UTF8Encoding(false),
            StandardOutputEncoding = System.Text.Encoding.UTF8,
        };
        psi.ArgumentList.Add(DriverPath);
        psi.ArgumentList.Add(RendererPath);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.StandardInput.Write(input.ToJsonString());
        p.StandardInput.Close();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"node {DriverPath} failed ({p.ExitCode}): {stderr.Result}");
        using var doc = JsonDocument.Parse(stdout.Result);
        return doc.RootElement.EnumerateArray().Select(e => new Result(
            e.TryGetProperty("text", out var t) ? Utf16(t.GetString()!) : null,
            e.TryGetProperty("error", out var er) ? Utf16(er.GetString()!) : null)).ToList();
    }
}

/// <summary>A fact that needs node and the fetched reference renderer: skipped with the reason unless RAFT_REQUIRE_JINJA_REFERENCE=1.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
internal sealed class JinjaReferenceFactAttribute : FactAttribute
{
    public JinjaReferenceFactAttribute(params string[] files)
    {
        if (JinjaReference.Required) return;
        if (JinjaReference.Node() is null) { Skip = "node is not on PATH (RAFT_REQUIRE_JINJA_REFERENCE=1 makes this a failure)."; return; }
        var missing = files.Append("huggingface-jinja/index.cjs").Where(f => !File.Exists(Path.Combine(TokenizerFiles.Root, f))).ToArray();
        if (missing.Length > 0)
            Skip = $"Reference files absent ({string.Join(", ", missing)} under {TokenizerFiles.Root}): run tests/Raft.Model.Tests/fetch-tokenizers.sh " +
                   "(RAFT_REQUIRE_JINJA_REFERENCE=1 makes this a failure).";
    }
}

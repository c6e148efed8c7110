using System.Collections;
using System.Diagnostics;
using System.Reflection;

namespace Raft.GpuBench;

/// <summary>
/// Runs the repository's GPU-only xunit tests (the methods marked <c>[GpuFact]</c>, <c>[GpuTheory]</c> <c>[CudaFact]</c> or <c>[NcclFact]</c> in the test
/// assemblies compiled into this binary) on a machine that has a GPU but no .NET SDK, where <c>dotnet test</c>
/// cannot run: the lent GPU machine gets the self-contained binary only. The same test code, not a copy: each
/// class is created with its constructor's fixtures (one instance per fixture type, disposed at the end), every
/// theory row of <c>[MemberData]</c> / <c>[InlineData]</c> is run, and a thrown exception (an xunit assertion or
/// anything else) is a failure with its message. Ends with the plain closing line "N passed, N failed".
/// </summary>
internal static class GpuTestRunner
{
    private static readonly string[] AttributeNames = ["GpuFactAttribute", "GpuTheoryAttribute", "CudaFactAttribute", "NcclFactAttribute"];

    /// <summary>Runs every GPU test whose "Class.Method" contains <paramref name="filter"/> (all when null); returns the number failed.</summary>
    public static int Run(IEnumerable<Assembly> assemblies, string? filter, TextWriter log)
    {
        int passed = 0, failed = 0;
        var fixtures = new Dictionary<Type, object>();
        var failures = new List<string>();
        try
        {
            foreach (var assembly in assemblies)
                foreach (var type in assembly.GetTypes().Where(t => t.IsClass && t.IsPublic && !t.IsAbstract).OrderBy(t => t.FullName, StringComparer.Ordinal))
                {
                    var methods = type.GetMethods(BindingFlags.Public | BindingFlags.Instance)
                        .Where(m => m.GetCustomAttributes().Any(a => AttributeNames.Contains(a.GetType().Name)))
                        .Where(m => filter is null || $"{type.Name}.{m.Name}".Contains(filter, StringComparison.Ordinal))
                        .OrderBy(m => m.MetadataToken)
                        .ToList();
                    if (methods.Count == 0) continue;
                    foreach (var method in methods)
                        foreach (var row in Rows(type, method))
                        {
                            string name = $"{type.Name}.{method.Name}({string.Join(", ", row.Select(Show))})";
                            var sw = Stopwatch.StartNew();
                            string? error = Invoke(type, method, row, fixtures);
                            if (error is null)
                            {
                                passed++;
                                log.WriteLine($"  pass {name} [{sw.Elapsed.TotalSeconds:F2} s]");
                            }
                            else
                            {
                                failed++;
                                failures.Add($"{name}: {error}");
                                log.WriteLine($"  FAIL {name}: {error}");
                            }
                        }
                }
        }
        finally
        {
            foreach (var f in fixtures.Values) (f as IDisposable)?.Dispose();
        }
        if (failures.Count > 0)
        {
            log.WriteLine();
            log.WriteLine("failures:");
            foreach (var f in failures) log.WriteLine("  " + f);
        }
        log.WriteLine($"{passed} passed, {failed} failed");
        return failed;
    }

    private static IEnumerable<object?[]> Rows(Type type, MethodInfo method)
    {
        var parameters = method.GetParameters();
        if (parameters.Length == 0)
        {
            yield return [];
            yield break;
        }
        foreach (var a in method.GetCustomAttributes())
        {
            var at = a.GetType();
            if (at.Name == "InlineDataAttribute")
            {
                // xunit 2: InlineDataAttribute keeps its values in a private field `data`
                var data = (object?[]?)at.GetField("data", BindingFlags.NonPublic | BindingFlags.Instance)?.GetValue(a)
                    ?? throw new InvalidOperationException($"cannot read [InlineData] of {method.Name}");
                yield return Convert(data, parameters);
            }
            else if (at.Name == "MemberDataAttribute")
            {
                string member = (string)at.GetProperty("MemberName")!.GetValue(a)!;
                var owner = (Type?)at.GetProperty("MemberType")?.GetValue(a) ?? type;
                const BindingFlags any = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.FlattenHierarchy;
                object? source = owner.GetProperty(member, any)?.GetValue(null)
                    ?? owner.GetMethod(member, any, Type.EmptyTypes)?.Invoke(null, null)
                    ?? owner.GetField(member, any)?.GetValue(null)
                    ?? throw new InvalidOperationException($"[MemberData({member})] of {method.Name} not found on {owner.Name}");
                foreach (var item in (IEnumerable)source)
                    yield return Convert((object?[])item, parameters);
            }
        }
    }

    private static object?[] Convert(object?[] values, ParameterInfo[] parameters)
    {
        var result = new object?[parameters.Length];
        for (int i = 0; i < parameters.Length; i++)
        {
            object? v = i < values.Length ? values[i] : parameters[i].DefaultValue;
            var target = parameters[i].ParameterType;
            if (v is not null && !target.IsInstanceOfType(v))
                v = target.IsEnum ? Enum.ToObject(target, v) : System.Convert.ChangeType(v, target, System.Globalization.CultureInfo.InvariantCulture);
            result[i] = v;
        }
        return result;
    }

    private static string? Invoke(Type type, MethodInfo method, object?[] row, Dictionary<Type, object> fixtures)
    {
        object? instance = null;
        try
        {
            var ctor = type.GetConstructors().OrderByDescending(c => c.GetParameters().Length).First();
            var args = ctor.GetParameters().Select(p =>
            {
                if (!fixtures.TryGetValue(p.ParameterType, out var f))
                    fixtures[p.ParameterType] = f = Activator.CreateInstance(p.ParameterType)!;
                return f;
            }).ToArray();
            instance = ctor.Invoke(args);
            var result = method.Invoke(instance, row);
            if (result is Task task) task.GetAwaiter().GetResult();
            return null;
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            return Describe(e.InnerException);
        }
        catch (Exception e)
        {
            return Describe(e);
        }
        finally
        {
            (instance as IDisposable)?.Dispose();
        }
    }

    private static string Describe(Exception e) => $"{e.GetType().Name}: {e.Message.Replace('\n', ' ')}";

    private static string Show(object? v) => v switch
    {
        null => "null",
        string s => '"' + s + '"',
        float f => f.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        double d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        _ => System.Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture) ?? "",
    };
}

using System.Diagnostics;
using System.Globalization;
using System.Runtime.Intrinsics;

namespace Raft.Benchmarks.Training;

/// <summary>
/// The machine's theoretical fp32 peak per core, from the clock: MHz × 2 FMA units × lanes × 2 flops, with
/// 16 lanes when Vector512 is accelerated (AVX-512), 8 with AVX2 only. The MHz is <c>lscpu</c>'s "CPU max MHz"
/// (or "CPU MHz") when it reports one, else the first "cpu MHz" of /proc/cpuinfo (a VM's nominal clock:
/// this ignores boost, and that the clock may drop under AVX-512 load). Assumes 2 FMA pipes of the full
/// vector width per core (true of Zen 4/5 and of Intel server cores with two AVX-512 FMA units).
/// </summary>
public static class CpuPeak
{
    private static readonly Lazy<(double? Mhz, string Source)> Clock = new(ReadClock);

    /// <summary>The clock used, in MHz, or null when unknown.</summary>
    public static double? Mhz => Clock.Value.Mhz;

    /// <summary>Where <see cref="Mhz"/> came from.</summary>
    public static string MhzSource => Clock.Value.Source;

    /// <summary>fp32 lanes per vector.</summary>
    public static int Lanes => Vector512.IsHardwareAccelerated ? 16 : Vector256.IsHardwareAccelerated ? 8 : 1;

    /// <summary>FMA units per core (assumed).</summary>
    public const int FmaUnits = 2;

    /// <summary>Peak GFLOP/s of one core, or null when the clock is unknown.</summary>
    public static double? PerCoreGflops => Mhz is double m ? m * 1e6 * FmaUnits * Lanes * 2 / 1e9 : null;

    /// <summary>One line stating the peak and its assumptions.</summary>
    public static string Describe() => PerCoreGflops is double p
        ? string.Create(CultureInfo.InvariantCulture,
            $"theoretical peak = {Mhz:0} MHz ({MhzSource}) × {FmaUnits} FMA units × {Lanes} fp32 lanes × 2 flops = {p:0.0} GFLOP/s per core, {p * Environment.ProcessorCount:0.0} GFLOP/s for {Environment.ProcessorCount} cores (assumes two full-width FMA pipes per core at that clock; boost and AVX-512 clock offsets ignored)")
        : "theoretical peak unknown (no clock found in lscpu or /proc/cpuinfo)";

    private static (double?, string) ReadClock()
    {
        try
        {
            var psi = new ProcessStartInfo("lscpu") { RedirectStandardOutput = true, UseShellExecute = false };
            using var p = Process.Start(psi);
            if (p is not null)
            {
                string text = p.StandardOutput.ReadToEnd();
                p.WaitForExit();
                foreach (string key in new[] { "CPU max MHz:", "CPU MHz:" })
                {
                    var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal));
                    if (line is not null && double.TryParse(line[key.Length..].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double mhz) && mhz > 0)
                        return (mhz, $"lscpu {key.TrimEnd(':')}");
                }
            }
        }
        catch (System.ComponentModel.Win32Exception) { }
        catch (InvalidOperationException) { }
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("cpu MHz", StringComparison.Ordinal));
            if (line is not null && double.TryParse(line.Split(':', 2)[1].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double mhz) && mhz > 0)
                return (mhz, "/proc/cpuinfo cpu MHz; lscpu reports no MHz here");
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return (null, "unknown");
    }
}

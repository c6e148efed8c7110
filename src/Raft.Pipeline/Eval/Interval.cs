using System.Globalization;

namespace Raft.Pipeline.Eval;

/// <summary>A mean with a confidence interval [<paramref name="Low"/>, <paramref name="High"/>], all in the same unit.</summary>
/// <param name="Mean">The point estimate.</param>
/// <param name="Low">The interval's lower end.</param>
/// <param name="High">The interval's upper end.</param>
/// <param name="Method">How the interval was computed (<c>wilson</c> over items, <c>t</c> over seeds).</param>
public sealed record Interval(double Mean, double Low, double High, string Method)
{
    /// <summary>The interval in percent, e.g. <c>55.0 [49.2, 60.7]</c> (values in [0, 1] scaled by 100).</summary>
    public string ToPercent() => string.Create(CultureInfo.InvariantCulture, $"{100 * Mean:F1} [{100 * Low:F1}, {100 * High:F1}]");
}

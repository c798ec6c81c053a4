using SmpRobot.Vision;

namespace SmpRobot.Tests.Vision;

internal static class VisionTestSupport
{
    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "SmpRobot.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
    }

    public static double Rms(IEnumerable<double> values)
    {
        var list = values.ToList();
        return Math.Sqrt(list.Sum(v => v * v) / list.Count);
    }

    /// <summary>True speed of the head origin at scene time t (central difference), mm/s.</summary>
    public static double TrueSpeed(SyntheticScene scene, double tS) =>
        (scene.TruthAt(tS + 0.0005).Translation - scene.TruthAt(tS - 0.0005).Translation).Length / 0.001;

    /// <summary>Timestamp of scene time t on a clock with the given frequency.</summary>
    public static long Stamp(TimeProvider clock, double tS) => (long)Math.Round(tS * clock.TimestampFrequency);
}

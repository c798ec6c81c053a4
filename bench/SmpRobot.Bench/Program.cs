using System.Text.Json;

namespace SmpRobot.Bench;

/// <summary>
/// smp-bench NAME...: runs the named benchmarks (all when none is named). Each prints progress to
/// stderr and, as its last line on stdout, one JSON object with its figures.
/// </summary>
internal static class Program
{
    private static readonly Dictionary<string, Func<Task<Dictionary<string, object>>>> Benches = new()
    {
        ["estop"] = EstopBench.RunAsync,
        ["estop-load"] = EstopLoadBench.RunAsync,
        ["deadman"] = DeadmanBench.RunAsync,
        ["serial"] = SerialBench.RunAsync,
        ["tracking"] = TrackingBench.RunAsync,
        ["tracking-search"] = TrackingBench.RunFullSearchAsync,
        ["calibration"] = CalibrationBench.RunAsync,
        ["design"] = DesignBench.RunAsync,
        ["surface"] = SurfaceBench.RunAsync,
        ["treatment"] = TreatmentBench.RunAsync,
    };

    // Figures are read by people too: "<=" stays "<=", not "\u003C=".
    private static readonly JsonSerializerOptions JsonOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static async Task<int> Main(string[] args)
    {
        // As the controller does, before any OpenCV call.
        SmpRobot.Vision.OpenCvRuntime.ConfigureIpp();
        var names = args.Length == 0 ? Benches.Keys.ToArray() : args;
        foreach (var name in names)
        {
            if (!Benches.ContainsKey(name))
            {
                await Console.Error.WriteLineAsync($"smp-bench: unknown benchmark '{name}'; known: {string.Join(", ", Benches.Keys)}");
                return 2;
            }
        }
        foreach (var name in names)
        {
            var figures = await Benches[name]();
            var line = new Dictionary<string, object> { ["bench"] = name };
            foreach (var (k, v) in figures) line[k] = v;
            Console.WriteLine(JsonSerializer.Serialize(line, JsonOptions));
        }
        return 0;
    }
}

/// <summary>Order statistics of a sample.</summary>
internal static class Stats
{
    public static double Percentile(IReadOnlyList<double> values, double p)
    {
        var sorted = values.Order().ToArray();
        var rank = (int)Math.Ceiling(p / 100.0 * sorted.Length) - 1;
        return sorted[Math.Clamp(rank, 0, sorted.Length - 1)];
    }

    public static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToArray();
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    public static double Round(double value, int digits = 3) => Math.Round(value, digits);
}

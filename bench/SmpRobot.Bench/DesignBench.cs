using System.Diagnostics;
using SmpRobot.Controller;
using SmpRobot.Machine;
using SmpRobot.Treatment.Design;
using SmpRobot.Treatment.Heads;
using SmpRobot.Treatment.Mesh;
using SmpRobot.Treatment.Metrics;
using SmpRobot.Treatment.Planning;

namespace SmpRobot.Bench;

/// <summary>
/// A whole-scalp design (the Norwood VI preset on the bundled synthetic head: about 300 cm² at 65-70 dots/cm²,
/// three sessions) generated as <c>smp design plan</c> does, without the pictures: read and check the design,
/// sample every session, measure, and write the plans in memory (head positions included). On one core (the
/// process is pinned to CPU 0), five runs; seconds is their median (the first includes the JIT), peakMemoryMb the
/// process's peak working set. The figures of natural are those of the last run (every run gives the same dots).
/// </summary>
internal static class DesignBench
{
    private const int Runs = 5;

    public static async Task<Dictionary<string, object>> RunAsync()
    {
        if (OperatingSystem.IsLinux() || OperatingSystem.IsWindows()) Process.GetCurrentProcess().ProcessorAffinity = 1;
        var profile = MachineProfile.Load(BenchRig.ProfilePath("sim"));
        var hardware = HardwarePaths.HardwareDirectory();
        var headPath = Path.Combine(hardware, "heads", "adult-synthetic.head.json");
        var head = Google.Protobuf.JsonParser.Default.Parse<SmpRobot.Contracts.V1.HeadModel>(await File.ReadAllTextAsync(headPath));
        var mesh = MeshReader.Read(Path.Combine(hardware, "heads", head.Mesh));
        var dir = Directory.CreateTempSubdirectory("smp-bench-design-");
        try
        {
            head.Mesh = Path.Combine(hardware, "heads", head.Mesh);
            var designPath = Path.Combine(dir.FullName, "norwood-6.design.json");
            await File.WriteAllTextAsync(designPath, DesignLoader.Format(NorwoodPresets.Create(6, head, mesh)));

            var seconds = new List<double>();
            DesignDots? dots = null;
            DesignMetrics? metrics = null;
            DesignPlanSet? plans = null;
            for (var run = 0; run < Runs; run++)
            {
                var clock = Stopwatch.StartNew();
                var check = DesignResolver.Resolve(DesignLoader.Load(designPath), profile);
                if (!check.IsValid) throw new InvalidOperationException("the Norwood VI preset does not check: " + string.Join("; ", check.Violations));
                dots = DesignPlanner.Generate(check.Design!);
                metrics = DesignMetricsCalculator.Measure(dots);
                plans = DesignPlans.Build(dots, profile);
                clock.Stop();
                seconds.Add(clock.Elapsed.TotalSeconds);
                await Console.Error.WriteLineAsync($"design: run {run + 1}: {dots.Dots.Count} dots in {clock.Elapsed.TotalSeconds:0.00} s (sampling {dots.SamplingTime.TotalSeconds:0.00} s)");
            }
            var g = metrics!.Goals;
            var area = metrics.Regions.Sum(r => r.BodyAreaCm2 + r.BandAreaCm2);
            var peak = Process.GetCurrentProcess().PeakWorkingSet64 / (1024.0 * 1024.0);
            return new Dictionary<string, object>
            {
                ["dots"] = dots!.Dots.Count,
                ["areaCm2"] = Stats.Round(area, 1),
                ["seconds"] = Stats.Round(Stats.Median(seconds)),
                ["secondsRuns"] = seconds.Select(s => Stats.Round(s)).ToArray(),
                ["secondsGoal"] = 5.0,
                ["peakMemoryMb"] = Stats.Round(peak, 0),
                ["peakMemoryGoalMb"] = 500,
                ["densityErrorMaxPct"] = Stats.Round(g.DensityErrorMaxPct, 2),
                ["rhoMin"] = Stats.Round(g.RhoMin),
                ["rhoMax"] = Stats.Round(g.RhoMax),
                ["clarkEvansMin"] = Stats.Round(g.ClarkEvansMin),
                ["crossSessionMinOverSpacing"] = Stats.Round(g.CrossSessionMinOverSpacing),
                ["dotsInExclusions"] = g.DotsInExclusions,
                ["hairlineRising"] = g.HairlineRising,
                ["hairlineMirrorMatchFraction"] = Stats.Round(g.HairlineMirrorMatchFraction),
                ["goalsMet"] = g.AllMet,
                ["headPositions"] = plans!.Patches.Count,
                ["plansValid"] = plans.Sessions.All(s => s.Check.IsValid) && plans.Unreachable.Count == 0,
            };
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}

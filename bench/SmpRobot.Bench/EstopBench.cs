using SmpRobot.Controller;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Motion;
using SmpRobot.Machine;

namespace SmpRobot.Bench;

/// <summary>
/// E-stop latency: from the EmergencyStop RPC arriving at the controller to the feed-hold byte
/// reaching the in-process simulated gantry, while a session streams. Both instants are read from
/// the same clock (TimeProvider.System timestamps).
/// </summary>
internal static class EstopBench
{
    private const int Trials = 200;
    private const double GoalP99Ms = 5;

    public static async Task<Dictionary<string, object>> RunAsync()
    {
        var profilePath = BenchRig.ProfilePath("sim");
        var simulator = new SimulatedGantry(MachineProfile.Load(profilePath), TimeProvider.System, new SimulatedGantryOptions { TimeScale = 20 });
        var data = Directory.CreateTempSubdirectory("smp-bench-estop-");
        try
        {
            await using var rig = await BenchRig.StartAsync(new ControllerOptions { ProfilePath = profilePath, DataDirectory = data.FullName, Simulator = simulator }, secure: !BenchRig.DevelopmentLoopbackAsked);
            var latencies = await rig.EstopTrialsAsync(simulator, Trials, "estop");
            var p99 = Stats.Percentile(latencies, 99);
            return new Dictionary<string, object>
            {
                // A chair's set-up: TLS with its certificate pinned, and a user's token on every call.
                ["tls"] = rig.Tls,
                ["tokens"] = rig.Tls,
                ["trials"] = latencies.Count,
                ["medianMs"] = Stats.Round(Stats.Median(latencies)),
                ["p99Ms"] = Stats.Round(p99),
                ["maxMs"] = Stats.Round(latencies.Max()),
                ["goalP99Ms"] = GoalP99Ms,
                ["p99OverGoal"] = Stats.Round(p99 / GoalP99Ms),
                ["note"] = "RPC arrival at the HTTP pipeline to feed-hold byte at the in-process simulator, while a session streams (time scale 20)",
            };
        }
        finally
        {
            data.Delete(recursive: true);
        }
    }
}

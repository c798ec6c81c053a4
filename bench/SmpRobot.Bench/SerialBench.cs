using System.Globalization;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Plans;
using SmpRobot.Controller.Safety;
using SmpRobot.Machine;

namespace SmpRobot.Bench;

/// <summary>
/// The real serial path at 115200 baud: the simulated gantry behind a pseudo-terminal (paced at
/// 10 bits per byte), driven through System.IO.Ports by the real client.
/// throughputRatio: bytes/s of streamed short motion lines ÷ 11,520 (the wire's limit).
/// estopMedianMs/estopP99Ms: EmergencyStop RPC arrival at a real controller (--gantry serial:PTY) to
/// the feed-hold byte reaching the simulated board, while a session streams.
/// </summary>
internal static class SerialBench
{
    private const int Baud = 115200;
    private const double WireBytesPerSecond = Baud / 10.0;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    public static async Task<Dictionary<string, object>> RunAsync()
    {
        // As in the test assembly: on a busy 2-core machine a thread pool that grows slowly would
        // delay the operator heartbeats (dead-man) by whole seconds while the wire threads run.
        ThreadPool.GetMinThreads(out var workers, out var io);
        ThreadPool.SetMinThreads(Math.Max(workers, 64), Math.Max(io, 64));
        var profilePath = BenchRig.ProfilePath("sim");
        var profile = MachineProfile.Load(profilePath);
        var dir = Directory.CreateTempSubdirectory("smp-bench-serial-");
        try
        {
            var figures = new Dictionary<string, object>();
            foreach (var (k, v) in await ThroughputAsync(profile, dir.FullName)) figures[k] = v;
            foreach (var (k, v) in await EstopAsync(profilePath, profile, dir.FullName)) figures[k] = v;
            var deskPath = BenchRig.ProfilePath("desk-200");
            foreach (var (k, v) in await SessionAsync(deskPath, MachineProfile.Load(deskPath), dir.FullName)) figures[k] = v;
            figures["note"] = "simulator on a pty at 115200 baud (10 bits/byte, both directions paced), client through System.IO.Ports; throughput at time scale 1000 so the planner keeps up; e-stop at time scale 20, RPC arrival to feed-hold byte at the board; session on desk-200 at time scale 1, idle per dot from the simulator's motion record";
            return figures;
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static async Task<Dictionary<string, object>> ThroughputAsync(MachineProfile profile, string dir)
    {
        var lines = EnvInt("SMP_BENCH_SERIAL_LINES", 1500);
        await using var gantry = new SimulatedGantry(profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = 1000 });
        await using var host = new SimulatorHost(gantry, Baud, TimeProvider.System);
        var pty = host.AddPty(Path.Combine(dir, "ttyThroughput"));
#pragma warning disable CA2000 // the GrblClient owns the transport and disposes it
        await using var client = new GrblClient(new SerialGantryTransport(pty.LinkPath, Baud), TimeProvider.System, new GrblClientOptions { RxBufferBytes = profile.RxBufferBytes });
#pragma warning restore CA2000
        using var cts = new CancellationTokenSource(Timeout);
        await client.ConnectAsync(cts.Token);
        await client.ExecuteAsync("$X", cts.Token);
        await client.ExecuteAsync("G4 P0", cts.Token);

        var acks = new List<Task<LineAck>>(lines);
        long bytes = 0;
        var start = TimeProvider.System.GetTimestamp();
        for (var i = 0; i < lines; i++)
        {
            // Back and forth, first towards negative X: grbl keeps machine coordinates in [-max travel, 0], and an
            // unhomed board sits at 0, so the head stays within travel however many lines are streamed.
            var line = i % 2 == 0 ? "G91 G1 X-0.01 F6000" : "G91 G1 X0.01 F6000";
            acks.Add((await client.SendLineAsync(line, cts.Token)).Ack);
            bytes += line.Length + 1;
        }
        var results = await Task.WhenAll(acks).WaitAsync(Timeout);
        var seconds = TimeProvider.System.GetElapsedTime(start).TotalSeconds;
        if (results.Any(r => !r.Ok)) throw new InvalidOperationException("a streamed line was refused: " + results.First(r => !r.Ok));
        var bytesPerSecond = bytes / seconds;
        await Console.Error.WriteLineAsync($"serial: streamed {lines} lines ({bytes} bytes) in {seconds:0.000} s = {bytesPerSecond:0} B/s");
        return new Dictionary<string, object>
        {
            ["throughputRatio"] = Stats.Round(bytesPerSecond / WireBytesPerSecond),
            ["throughputBytesPerSecond"] = Stats.Round(bytesPerSecond, 0),
            ["throughputLines"] = lines,
            ["droppedBytes"] = gantry.DroppedBytes,
        };
    }

    private static async Task<Dictionary<string, object>> EstopAsync(string profilePath, MachineProfile profile, string dir)
    {
        var trials = EnvInt("SMP_BENCH_SERIAL_ESTOP_TRIALS", 200);
        const double timeScale = 20;
        await using var gantry = new SimulatedGantry(profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = timeScale });
        await using var host = new SimulatorHost(gantry, Baud, TimeProvider.System);
        var pty = host.AddPty(Path.Combine(dir, "ttyEstop"));
        await using var rig = await BenchRig.StartAsync(new ControllerOptions
        {
            Gantry = $"serial:{pty.LinkPath}@{Baud.ToString(CultureInfo.InvariantCulture)}",
            ProfilePath = profilePath,
            DataDirectory = Directory.CreateDirectory(Path.Combine(dir, "data")).FullName,
            TimeScale = timeScale,
        });
        var latencies = await rig.EstopTrialsAsync(gantry, trials, "serial estop");
        return new Dictionary<string, object>
        {
            ["estopTrials"] = latencies.Count,
            ["estopMedianMs"] = Stats.Round(Stats.Median(latencies)),
            ["estopP99Ms"] = Stats.Round(Stats.Percentile(latencies, 99)),
            ["estopMaxMs"] = Stats.Round(latencies.Max()),
        };
    }

    /// <summary>
    /// A whole session over the pty at time scale 1: session time ÷ kinematic time, and the gantry's idle
    /// time per dot read from the simulator's motion record (gaps between consecutive motions, dwells
    /// counting as busy, attributed to the dot whose retract ends the run of motions).
    /// </summary>
    private static async Task<Dictionary<string, object>> SessionAsync(string profilePath, MachineProfile profile, string dir)
    {
        var dots = EnvInt("SMP_BENCH_SERIAL_DOTS", 2000);
        await using var gantry = new SimulatedGantry(profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = 1 });
        await using var host = new SimulatorHost(gantry, Baud, TimeProvider.System);
        var pty = host.AddPty(Path.Combine(dir, "ttySession"));
        await using var rig = await BenchRig.StartAsync(new ControllerOptions
        {
            Gantry = $"serial:{pty.LinkPath}@{Baud.ToString(CultureInfo.InvariantCulture)}",
            ProfilePath = profilePath,
            DataDirectory = Directory.CreateDirectory(Path.Combine(dir, "data-session")).FullName,
        });
        await rig.Machine.HomeAsync(new HomeRequest());
        var session = await rig.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = DemoPlanGenerator.Generate(dots, seed: 2) });
        var firstMotion = gantry.MotionRecord.Count;
        await rig.Sessions.StartAsync(new SessionRef { SessionId = session.Id });
        var lastReport = 0;
        var done = await rig.WaitAsync(session.Id, s =>
        {
            if (s.Dots.Placed >= lastReport + 200)
            {
                lastReport = s.Dots.Placed;
                Console.Error.WriteLine($"serial session: {s.Dots.Placed}/{dots} dots, {s.ElapsedSeconds:0} s");
            }
            return s.State is not (SessionState.Running or SessionState.Pausing);
        }, mustKeepRunning: false, TimeSpan.FromHours(2));
        // A hold (e.g. the dead-man on a loaded machine) ends the run early: report what was placed, and how it ended.
        if (done.State != SessionState.Completed) await Console.Error.WriteLineAsync($"serial session ended {done.State} after {done.Dots.Placed} dots: {done.Reason}");

        var idlePerDotMs = IdlePerDotMs(gantry.MotionRecord.Skip(firstMotion).ToList());
        return new Dictionary<string, object>
        {
            ["sessionDots"] = done.Dots.Placed,
            ["sessionEnded"] = done.State == SessionState.Completed ? "COMPLETED" : $"{done.State}: {done.Reason}",
            ["sessionSeconds"] = Stats.Round(done.ElapsedSeconds),
            ["kinematicSeconds"] = Stats.Round(done.KinematicSeconds),
            ["sessionOverKinematic"] = Stats.Round(done.ElapsedSeconds / done.KinematicSeconds),
            ["idlePerDotMedianMs"] = Stats.Round(Stats.Median(idlePerDotMs)),
            ["idlePerDotP99Ms"] = Stats.Round(Stats.Percentile(idlePerDotMs, 99)),
        };
    }

    /// <summary>Gantry idle time per dot, ms: gaps between consecutive motions up to and including each dot's retract.</summary>
    private static List<double> IdlePerDotMs(List<SimMotion> record)
    {
        var perDot = new List<double>();
        double idle = 0;
        for (var k = 1; k < record.Count; k++)
        {
            idle += Math.Max(0, record[k].StartSimSeconds - record[k - 1].EndSimSeconds);
            // A retract: a Z-up move right after the dwell at depth closes the dot.
            if (record[k - 1].Kind == SimMotionKind.Dwell && record[k].To.Z > record[k].From.Z && record[k].To.X == record[k].From.X)
            {
                perDot.Add(idle * 1000);
                idle = 0;
            }
        }
        return perDot;
    }

    private static int EnvInt(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : fallback;
}

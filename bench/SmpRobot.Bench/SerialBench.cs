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
        var root = FindRepoRoot();
        var profilePath = Path.Combine(root, "hardware", "profiles", "sim.json");
        var profile = MachineProfile.Load(profilePath);
        var dir = Directory.CreateTempSubdirectory("smp-bench-serial-");
        try
        {
            var figures = new Dictionary<string, object>();
            foreach (var (k, v) in await ThroughputAsync(profile, dir.FullName)) figures[k] = v;
            foreach (var (k, v) in await EstopAsync(profilePath, profile, dir.FullName)) figures[k] = v;
            var deskPath = Path.Combine(root, "hardware", "profiles", "desk-200.json");
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
        await using var client = new GrblClient(new SerialGantryTransport(pty.LinkPath, Baud), TimeProvider.System, new GrblClientOptions { RxBufferBytes = profile.RxBufferBytes });
        using var cts = new CancellationTokenSource(Timeout);
        await client.ConnectAsync(cts.Token);
        await client.ExecuteAsync("$X", cts.Token);
        await client.ExecuteAsync("G4 P0", cts.Token);

        var acks = new List<Task<LineAck>>(lines);
        long bytes = 0;
        var start = TimeProvider.System.GetTimestamp();
        for (var i = 0; i < lines; i++)
        {
            // Back and forth: the head stays in the envelope however many lines are streamed.
            var line = i % 2 == 0 ? "G91 G1 X0.01 F6000" : "G91 G1 X-0.01 F6000";
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
        var data = Directory.CreateDirectory(Path.Combine(dir, "data"));
        var app = ControllerHost.Build(new ControllerOptions
        {
            Gantry = $"serial:{pty.LinkPath}@{Baud.ToString(CultureInfo.InvariantCulture)}",
            ProfilePath = profilePath,
            DataDirectory = data.FullName,
            Urls = "http://127.0.0.1:0",
            TimeScale = timeScale,
            MinimumLogLevel = LogLevel.Error,
        });
        await app.StartAsync();
        try
        {
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var channel = GrpcChannel.ForAddress(address);
            using var safetyChannel = GrpcChannel.ForAddress(address); // e-stop gets its own connection, as in smp
            var sessions = new SessionService.SessionServiceClient(channel);
            var machine = new MachineService.MachineServiceClient(channel);
            var safety = new SafetyService.SafetyServiceClient(safetyChannel);
            var supervisor = app.Services.GetRequiredService<SafetySupervisor>();

            long holdByteTimestamp = 0;
            gantry.RealtimeByteReceived += (b, ts) =>
            {
                if (b == (byte)GrblRealtime.FeedHold) Interlocked.CompareExchange(ref holdByteTimestamp, ts, 0);
            };

            using var heartbeatStop = new CancellationTokenSource();
            var heartbeat = safety.OperatorHeartbeat(cancellationToken: heartbeatStop.Token);
            var beats = Task.Run(async () =>
            {
                using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
                try
                {
                    while (await timer.WaitForNextTickAsync(heartbeatStop.Token))
                    {
                        await heartbeat.RequestStream.WriteAsync(new Heartbeat { Operator = "bench" });
                    }
                }
                catch (OperationCanceledException)
                {
                }
            });
            await heartbeat.RequestStream.WriteAsync(new Heartbeat { Operator = "bench" });
            await machine.HomeAsync(new HomeRequest());
            var session = await sessions.CreateSessionAsync(new CreateSessionRequest { Plan = DemoPlanGenerator.Generate(1500, seed: 1) });
            await sessions.StartAsync(new SessionRef { SessionId = session.Id });

            var latencies = new List<double>(trials);
            for (var trial = 0; trial < trials; trial++)
            {
                var current = await sessions.GetAsync(new SessionRef { SessionId = session.Id });
                await WaitPlacedAsync(sessions, session.Id, current.Dots.Placed + 1);
                Interlocked.Exchange(ref holdByteTimestamp, 0);
                await safety.EmergencyStopAsync(new EmergencyStopRequest { Source = "bench", Reason = $"trial {trial}" }, deadline: DateTime.UtcNow.Add(Timeout));
                var arrived = supervisor.State.ArrivedTimestamp;
                var hold = Interlocked.Read(ref holdByteTimestamp);
                if (hold == 0) throw new InvalidOperationException($"trial {trial}: no feed-hold byte reached the board");
                latencies.Add(TimeProvider.System.GetElapsedTime(arrived, hold).TotalMilliseconds);

                await safety.ResetEmergencyStopAsync(new ResetEmergencyStopRequest { Source = "bench" });
                var stopped = await WaitStateAsync(sessions, session.Id, SessionState.EmergencyStopped);
                if (stopped.Dots.InDoubt > 0)
                {
                    await sessions.ResolveDotsAsync(new ResolveDotsRequest { SessionId = session.Id, AllInDoubt = true, Resolution = DotResolution.Skip, Operator = "bench" });
                }
                if (!(await machine.GetStatusAsync(new GetMachineStatusRequest())).Homed) await machine.HomeAsync(new HomeRequest());
                await sessions.ResumeAsync(new SessionRef { SessionId = session.Id });
                if (trial % 20 == 19) await Console.Error.WriteLineAsync($"serial estop: {trial + 1}/{trials} trials, median so far {Stats.Median(latencies):0.000} ms");
            }
            await heartbeatStop.CancelAsync();
            await beats;
            await sessions.AbortAsync(new SessionRef { SessionId = session.Id });
            return new Dictionary<string, object>
            {
                ["estopTrials"] = latencies.Count,
                ["estopMedianMs"] = Stats.Round(Stats.Median(latencies)),
                ["estopP99Ms"] = Stats.Round(Stats.Percentile(latencies, 99)),
                ["estopMaxMs"] = Stats.Round(latencies.Max()),
            };
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
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
        var app = ControllerHost.Build(new ControllerOptions
        {
            Gantry = $"serial:{pty.LinkPath}@{Baud.ToString(CultureInfo.InvariantCulture)}",
            ProfilePath = profilePath,
            DataDirectory = Directory.CreateDirectory(Path.Combine(dir, "data-session")).FullName,
            Urls = "http://127.0.0.1:0",
            MinimumLogLevel = LogLevel.Error,
        });
        await app.StartAsync();
        try
        {
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var channel = GrpcChannel.ForAddress(address);
            var sessions = new SessionService.SessionServiceClient(channel);
            var machine = new MachineService.MachineServiceClient(channel);
            var safety = new SafetyService.SafetyServiceClient(channel);
            using var heartbeatStop = new CancellationTokenSource();
            var heartbeat = safety.OperatorHeartbeat(cancellationToken: heartbeatStop.Token);
            await heartbeat.RequestStream.WriteAsync(new Heartbeat { Operator = "bench" });
            var beats = Task.Run(async () =>
            {
                using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
                try
                {
                    while (await timer.WaitForNextTickAsync(heartbeatStop.Token)) await heartbeat.RequestStream.WriteAsync(new Heartbeat { Operator = "bench" });
                }
                catch (OperationCanceledException)
                {
                }
            });
            await machine.HomeAsync(new HomeRequest());
            var session = await sessions.CreateSessionAsync(new CreateSessionRequest { Plan = DemoPlanGenerator.Generate(dots, seed: 2) });
            var firstMotion = gantry.MotionRecord.Count;
            await sessions.StartAsync(new SessionRef { SessionId = session.Id });
            Session done;
            using (var cts = new CancellationTokenSource(TimeSpan.FromHours(2)))
            using (var watch = sessions.Watch(new WatchSessionRequest { SessionId = session.Id }, cancellationToken: cts.Token))
            {
                var lastReport = 0;
                while (true)
                {
                    if (!await watch.ResponseStream.MoveNext(cts.Token)) throw new InvalidOperationException("the watch ended early");
                    done = watch.ResponseStream.Current.Session;
                    if (done.State is not (SessionState.Running or SessionState.Pausing)) break;
                    if (done.Dots.Placed >= lastReport + 200)
                    {
                        lastReport = done.Dots.Placed;
                        await Console.Error.WriteLineAsync($"serial session: {done.Dots.Placed}/{dots} dots, {done.ElapsedSeconds:0} s");
                    }
                }
            }
            await heartbeatStop.CancelAsync();
            await beats;
            if (done.State != SessionState.Completed) throw new InvalidOperationException($"the session ended {done.State}: {done.Reason}");

            var idlePerDotMs = IdlePerDotMs(gantry.MotionRecord.Skip(firstMotion).ToList());
            return new Dictionary<string, object>
            {
                ["sessionDots"] = done.Dots.Placed,
                ["sessionSeconds"] = Stats.Round(done.ElapsedSeconds),
                ["kinematicSeconds"] = Stats.Round(done.KinematicSeconds),
                ["sessionOverKinematic"] = Stats.Round(done.ElapsedSeconds / done.KinematicSeconds),
                ["idlePerDotMedianMs"] = Stats.Round(Stats.Median(idlePerDotMs)),
                ["idlePerDotP99Ms"] = Stats.Round(Stats.Percentile(idlePerDotMs, 99)),
            };
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    /// <summary>Gantry idle time per dot, ms: gaps between consecutive motions up to and including each dot's retract.</summary>
    private static List<double> IdlePerDotMs(IReadOnlyList<SimMotion> record)
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

    private static async Task WaitPlacedAsync(SessionService.SessionServiceClient sessions, string id, int placed)
    {
        using var cts = new CancellationTokenSource(Timeout);
        using var watch = sessions.Watch(new WatchSessionRequest { SessionId = id }, cancellationToken: cts.Token);
        while (await watch.ResponseStream.MoveNext(cts.Token))
        {
            var s = watch.ResponseStream.Current.Session;
            if (s.Dots.Placed >= placed) return;
            if (s.State != SessionState.Running) throw new InvalidOperationException($"session {id} is {s.State}: {s.Reason}");
        }
    }

    private static async Task<Session> WaitStateAsync(SessionService.SessionServiceClient sessions, string id, SessionState state)
    {
        using var cts = new CancellationTokenSource(Timeout);
        using var watch = sessions.Watch(new WatchSessionRequest { SessionId = id }, cancellationToken: cts.Token);
        while (await watch.ResponseStream.MoveNext(cts.Token))
        {
            if (watch.ResponseStream.Current.Session.State == state) return watch.ResponseStream.Current.Session;
        }
        throw new TimeoutException($"session {id} never reached {state}");
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SmpRobot.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException("cannot find the repository root");
    }
}

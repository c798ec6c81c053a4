using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Plans;
using SmpRobot.Controller.Safety;

namespace SmpRobot.Bench;

/// <summary>
/// E-stop latency: from the EmergencyStop RPC arriving at the controller to the feed-hold byte
/// reaching the simulated gantry, while a session streams dots. Both instants are read from the
/// same clock (TimeProvider.System timestamps): the service stamps the arrival, the simulator
/// stamps the byte as it receives it.
/// </summary>
internal static class EstopBench
{
    private const int Trials = 200;
    private const double GoalP99Ms = 5;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    public static async Task<Dictionary<string, object>> RunAsync()
    {
        var root = FindRepoRoot();
        var profilePath = Path.Combine(root, "hardware", "profiles", "sim.json");
        var profile = MachineProfile.Load(profilePath);
        var simulator = new SimulatedGantry(profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = 20 });
        var data = Directory.CreateTempSubdirectory("smp-bench-estop-");
        var app = ControllerHost.Build(new ControllerOptions { ProfilePath = profilePath, DataDirectory = data.FullName, Urls = "http://127.0.0.1:0", Simulator = simulator, MinimumLogLevel = LogLevel.Error });
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
            simulator.RealtimeByteReceived += (b, ts) =>
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

            var latencies = new List<double>(Trials);
            var roundTrips = new List<double>(Trials);
            for (var trial = 0; trial < Trials; trial++)
            {
                var current = await sessions.GetAsync(new SessionRef { SessionId = session.Id });
                await WaitPlacedAsync(sessions, session.Id, current.Dots.Placed + 1);
                Interlocked.Exchange(ref holdByteTimestamp, 0);
                var sent = TimeProvider.System.GetTimestamp();
                await safety.EmergencyStopAsync(new EmergencyStopRequest { Source = "bench", Reason = $"trial {trial}" }, deadline: DateTime.UtcNow.Add(Timeout));
                roundTrips.Add(TimeProvider.System.GetElapsedTime(sent).TotalMilliseconds);
                var arrived = supervisor.State.ArrivedTimestamp;
                latencies.Add(TimeProvider.System.GetElapsedTime(arrived, Interlocked.Read(ref holdByteTimestamp)).TotalMilliseconds);

                // Back to streaming: reset, resolve the dot in doubt (skip: the bench does not care), re-home if needed, resume.
                await safety.ResetEmergencyStopAsync(new ResetEmergencyStopRequest { Source = "bench" });
                var stopped = await WaitStateAsync(sessions, session.Id, SessionState.EmergencyStopped);
                if (stopped.Dots.InDoubt > 0)
                {
                    await sessions.ResolveDotsAsync(new ResolveDotsRequest { SessionId = session.Id, AllInDoubt = true, Resolution = DotResolution.Skip, Operator = "bench" });
                }
                if (!(await machine.GetStatusAsync(new GetMachineStatusRequest())).Homed) await machine.HomeAsync(new HomeRequest());
                await sessions.ResumeAsync(new SessionRef { SessionId = session.Id });
                if (trial % 20 == 19) await Console.Error.WriteLineAsync($"estop: {trial + 1}/{Trials} trials, median so far {Stats.Median(latencies):0.000} ms");
            }
            await heartbeatStop.CancelAsync();
            await beats;
            await sessions.AbortAsync(new SessionRef { SessionId = session.Id });

            var p99 = Stats.Percentile(latencies, 99);
            return new Dictionary<string, object>
            {
                ["trials"] = latencies.Count,
                ["medianMs"] = Stats.Round(Stats.Median(latencies)),
                ["p99Ms"] = Stats.Round(p99),
                ["maxMs"] = Stats.Round(latencies.Max()),
                ["goalP99Ms"] = GoalP99Ms,
                ["p99OverGoal"] = Stats.Round(p99 / GoalP99Ms),
                ["rpcRoundTripMedianMs"] = Stats.Round(Stats.Median(roundTrips)),
                ["note"] = "RPC arrival at the HTTP pipeline to feed-hold byte at the in-process simulator, while a session streams (time scale 20); round trip includes the whole stop sequence",
            };
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            data.Delete(recursive: true);
        }
    }

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

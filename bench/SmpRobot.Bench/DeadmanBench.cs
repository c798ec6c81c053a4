using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Plans;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Sessions;
using SmpRobot.Machine;

namespace SmpRobot.Bench;

/// <summary>
/// The dead-man in time: a console beats every 100 ms (as smp does) while a session runs on the
/// simulated gantry in real time (time scale 1), then goes silent without closing its stream (a
/// hung console or a frozen network). holdAfterSilence = the last beat's arrival at the controller →
/// the hold: the feed-hold byte at the simulator when a dot was under way, else the runner's
/// decision; dotsAfterSilence = dots placed after the last beat. Defaults of the profile (dead-man
/// timeout 400 ms). Goal: hold ≤ 500 ms after the last heartbeat.
/// </summary>
internal static class DeadmanBench
{
    private const int Trials = 30;
    private const double GoalMs = 500;

    public static async Task<Dictionary<string, object>> RunAsync()
    {
        var profilePath = BenchRig.ProfilePath("sim");
        var profile = MachineProfile.Load(profilePath);
        var simulator = new SimulatedGantry(profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = 1 });
        var data = Directory.CreateTempSubdirectory("smp-bench-deadman-");
        try
        {
            await using var rig = await BenchRig.StartAsync(new ControllerOptions { ProfilePath = profilePath, DataDirectory = data.FullName, Simulator = simulator }, heartbeat: false);
            var presence = rig.Services.GetRequiredService<OperatorPresence>();
            var sessions = rig.Services.GetRequiredService<SessionManager>();
            long decidedAt = 0;
            sessions.OperatorHoldStarted += (_, e) => Interlocked.Exchange(ref decidedAt, e.Timestamp);
            await rig.Machine.HomeAsync(new HomeRequest());
            var session = await rig.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = DemoPlanGenerator.Generate(1500, seed: 7) });
            var holdMs = new List<double>();
            var dotsAfter = new List<int>();
            var midDot = 0;
            for (var trial = 0; trial < Trials; trial++)
            {
                await using var console = await BenchConsole.StartAsync(rig.Safety, $"bench-console-{trial}");
                var reference = new SessionRef { SessionId = session.Id, ConsoleId = console.ConsoleId };
                if (trial == 0) await rig.Sessions.StartAsync(reference);
                else await rig.Sessions.ResumeAsync(reference);
                var running = await rig.Sessions.GetAsync(new SessionRef { SessionId = session.Id });
                // A varying moment within the dot cycle: 2 to 4 dots in.
                await rig.WaitAsync(session.Id, s => s.Dots.Placed >= running.Dots.Placed + 2 + (trial % 3), mustKeepRunning: true);
                Interlocked.Exchange(ref decidedAt, 0);
                var bytesBefore = simulator.RealtimeLog.Count;
                await console.GoSilentAsync();
                var placedAtSilence = (await rig.Sessions.GetAsync(new SessionRef { SessionId = session.Id })).Dots.Placed;
                var held = await rig.WaitAsync(session.Id, s => s.State == SessionState.Paused, mustKeepRunning: false);
                // Read after the hold: a beat still on its way when the console went silent arrives later.
                var lastBeat = presence.LastBeatTimestamp(console.ConsoleId);
                if (!held.Reason.Contains("operator heartbeat lost", StringComparison.Ordinal)) throw new InvalidOperationException("the session paused for another reason: " + held.Reason);
                var hold = simulator.RealtimeLog.Skip(bytesBefore).FirstOrDefault(b => b.Command == (byte)GrblRealtime.FeedHold && b.Timestamp >= lastBeat);
                long holdAt;
                if (hold is not null)
                {
                    holdAt = hold.Timestamp;
                    midDot++;
                }
                else
                {
                    holdAt = Interlocked.Read(ref decidedAt);
                }
                if (holdAt == 0) throw new InvalidOperationException($"trial {trial}: no hold recorded");
                holdMs.Add(TimeProvider.System.GetElapsedTime(lastBeat, holdAt).TotalMilliseconds);
                dotsAfter.Add(held.Dots.Placed - placedAtSilence);
                if (held.Dots.InDoubt > 0)
                {
                    await rig.Sessions.ResolveDotsAsync(new ResolveDotsRequest { SessionId = session.Id, AllInDoubt = true, Resolution = DotResolution.Skip, Operator = "bench" });
                }
                if (trial % 10 == 9) await Console.Error.WriteLineAsync($"deadman: {trial + 1}/{Trials} trials, hold median so far {Stats.Median(holdMs):0.0} ms");
            }
            await rig.Sessions.AbortAsync(new SessionRef { SessionId = session.Id });
            var p99 = Stats.Percentile(holdMs, 99);
            return new Dictionary<string, object>
            {
                ["trials"] = Trials,
                ["deadManTimeoutMs"] = profile.DeadManTimeoutMs,
                ["heartbeatPeriodMs"] = BenchConsole.PeriodMs,
                ["holdAfterSilenceMedianMs"] = Stats.Round(Stats.Median(holdMs)),
                ["holdAfterSilenceP99Ms"] = Stats.Round(p99),
                ["holdAfterSilenceMaxMs"] = Stats.Round(holdMs.Max()),
                ["goalMs"] = GoalMs,
                ["p99OverGoal"] = Stats.Round(p99 / GoalMs),
                ["dotsAfterSilenceMax"] = dotsAfter.Max(),
                ["holdsMidDot"] = midDot,
                ["note"] = "in-process controller, simulated gantry at time scale 1; the console stops beating without closing its stream; hold = feed-hold byte at the simulator (mid-dot) or the runner's decision (between dots)",
            };
        }
        finally
        {
            data.Delete(recursive: true);
        }
    }

    /// <summary>A console's heartbeat that can go silent.</summary>
    private sealed class BenchConsole : IAsyncDisposable
    {
        public const int PeriodMs = 100;
        private readonly AsyncDuplexStreamingCall<Heartbeat, SafetyStatus> _call;
        private readonly CancellationTokenSource _beats = new();
        private readonly CancellationTokenSource _stream = new();
        private readonly TaskCompletionSource _firstAnswer = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Task _sending;
        private readonly Task _receiving;

        private BenchConsole(SafetyService.SafetyServiceClient safety, string consoleId)
        {
            ConsoleId = consoleId;
            _call = safety.OperatorHeartbeat(cancellationToken: _stream.Token);
            _receiving = Task.Run(async () =>
            {
                try
                {
                    while (await _call.ResponseStream.MoveNext(_stream.Token)) _firstAnswer.TrySetResult();
                }
                catch (Exception e) when (e is OperationCanceledException or RpcException)
                {
                }
            });
            _sending = Task.Run(async () =>
            {
                using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(PeriodMs));
                ulong sequence = 0;
                try
                {
                    do
                    {
                        await _call.RequestStream.WriteAsync(new Heartbeat { Operator = "bench", Sequence = ++sequence, ConsoleId = consoleId });
                    }
                    while (await timer.WaitForNextTickAsync(_beats.Token));
                }
                catch (Exception e) when (e is OperationCanceledException or RpcException)
                {
                }
            });
        }

        public string ConsoleId { get; }

        public static async Task<BenchConsole> StartAsync(SafetyService.SafetyServiceClient safety, string consoleId)
        {
            var console = new BenchConsole(safety, consoleId);
            await console._firstAnswer.Task.WaitAsync(BenchRig.Timeout);
            return console;
        }

        public async Task GoSilentAsync()
        {
            await _beats.CancelAsync();
            await _sending.WaitAsync(BenchRig.Timeout);
        }

        public async ValueTask DisposeAsync()
        {
            await GoSilentAsync();
            await _stream.CancelAsync();
            _call.Dispose();
            try
            {
                await _receiving.WaitAsync(BenchRig.Timeout);
            }
            catch (TimeoutException)
            {
            }
            _beats.Dispose();
            _stream.Dispose();
        }
    }
}

using System.Diagnostics;
using Grpc.Core;
using Grpc.Net.Client;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Plans;
using SmpRobot.Machine;

namespace SmpRobot.Bench;

/// <summary>
/// The emergency stop under load: a running session watched by <see cref="Watchers"/> Watch streams
/// over <see cref="Connections"/> HTTP/2 connections (beyond the controller's per-connection cap some
/// are refused, as they must be), <see cref="GetsPerSecond"/> Session.Get calls a second on those
/// connections, and <see cref="Trials"/> e-stops on a connection of their own, each followed during
/// its stop sequence by a second e-stop from another client. The same trials without the load give
/// the baseline. Figures (ms, from one clock: TimeProvider.System timestamps):
/// estopByte = RPC arrival at the controller's HTTP pipeline → feed-hold byte at the simulator;
/// secondEstopByte = the same for the second e-stop; retractDone = RPC arrival → the retract move's
/// end in the simulator's motion record; estopReply = the client's round trip; replyAfterRetract =
/// the reply's arrival at the client − the retract's end; dotsPerSecondRatio = dots/s under load ÷
/// dots/s before it.
/// </summary>
internal static class EstopLoadBench
{
    private const int Watchers = 300;
    private const int Connections = 10;
    private const int GetsPerSecond = 2000;
    private const int Trials = 200;
    private const int NoLoadTrials = 60;
    private const double TimeScale = 20;
    private static readonly TimeSpan RateWindow = TimeSpan.FromSeconds(6);

    public static async Task<Dictionary<string, object>> RunAsync()
    {
        var profilePath = BenchRig.ProfilePath("sim");
        var simulator = new SimulatedGantry(MachineProfile.Load(profilePath), TimeProvider.System, new SimulatedGantryOptions { TimeScale = TimeScale });
        var data = Directory.CreateTempSubdirectory("smp-bench-estop-load-");
        try
        {
            await using var rig = await BenchRig.StartAsync(new ControllerOptions { ProfilePath = profilePath, DataDirectory = data.FullName, Simulator = simulator }, secure: !BenchRig.DevelopmentLoopbackAsked);
            var probe = new StopProbe(simulator, rig);
            await rig.Machine.HomeAsync(new HomeRequest());
            var session = await rig.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = DemoPlanGenerator.Generate(4000, seed: 3) });
            await rig.Sessions.StartAsync(new SessionRef { SessionId = session.Id });

            var ratePlain = await DotsPerSecondAsync(rig, session.Id);
            await Console.Error.WriteLineAsync($"estop-load: {ratePlain:0.0} dots/s without load");
            var plain = new List<Trial>();
            for (var i = 0; i < NoLoadTrials; i++) plain.Add(await probe.TrialAsync(session.Id, withSecond: false));
            await Console.Error.WriteLineAsync($"estop-load: {NoLoadTrials} trials without load, retract p99 {Stats.Percentile([.. plain.Select(t => t.RetractDoneMs)], 99):0.0} ms");

            await using var load = await Load.StartAsync(rig, session.Id);
            await Console.Error.WriteLineAsync($"estop-load: {load.WatchersOpen} watchers open, {load.WatchRefused} refused ({load.RefusalMessage})");
            await Task.Delay(TimeSpan.FromSeconds(2));
            var rateLoaded = await DotsPerSecondAsync(rig, session.Id);
            await Console.Error.WriteLineAsync($"estop-load: {rateLoaded:0.0} dots/s under load, {load.GetsPerSecondAchieved:0} Get/s");
            var loaded = new List<Trial>();
            for (var i = 0; i < Trials; i++)
            {
                loaded.Add(await probe.TrialAsync(session.Id, withSecond: true));
                if (i % 20 == 19) await Console.Error.WriteLineAsync($"estop-load: {i + 1}/{Trials} trials under load, byte p99 so far {Stats.Percentile([.. loaded.Select(t => t.EstopByteMs)], 99):0.00} ms");
            }
            var getsAchieved = load.GetsPerSecondAchieved;
            var watchersOpenAtEnd = load.WatchersOpen;
            var watcherFailures = load.WatcherFailures;
            await load.DisposeAsync();
            await rig.Sessions.AbortAsync(new SessionRef { SessionId = session.Id });

            double P99(IEnumerable<double> v) => Stats.Round(Stats.Percentile([.. v], 99));
            double Median(IEnumerable<double> v) => Stats.Round(Stats.Median([.. v]));
            var retractNoLoadP99 = P99(plain.Select(t => t.RetractDoneMs));
            var retractP99 = P99(loaded.Select(t => t.RetractDoneMs));
            var replyAfterRetractP99 = P99(loaded.Select(t => t.ReplyAfterRetractMs));
            var ratio = Stats.Round(rateLoaded / ratePlain);
            return new Dictionary<string, object>
            {
                // A chair's set-up: TLS with its certificate pinned, and a user's token on every call.
                ["tls"] = rig.Tls,
                ["tokens"] = rig.Tls,
                ["watchers"] = Watchers,
                ["watchRefused"] = load.WatchRefused,
                ["watchersOpen"] = watchersOpenAtEnd,
                ["watcherFailures"] = watcherFailures,
                ["connections"] = Connections,
                ["getsPerSecond"] = Stats.Round(getsAchieved, 0),
                ["trials"] = loaded.Count,
                ["estopByteMedianMs"] = Median(loaded.Select(t => t.EstopByteMs)),
                ["estopByteP99Ms"] = P99(loaded.Select(t => t.EstopByteMs)),
                ["secondEstopByteP99Ms"] = P99(loaded.Select(t => t.SecondEstopByteMs)),
                ["estopReplyMedianMs"] = Median(loaded.Select(t => t.ReplyMs)),
                ["estopReplyP99Ms"] = P99(loaded.Select(t => t.ReplyMs)),
                ["retractDoneMedianMs"] = Median(loaded.Select(t => t.RetractDoneMs)),
                ["retractDoneP99Ms"] = retractP99,
                ["retractDoneNoLoadP99Ms"] = retractNoLoadP99,
                ["estopByteNoLoadP99Ms"] = P99(plain.Select(t => t.EstopByteMs)),
                ["replyAfterRetractP99Ms"] = replyAfterRetractP99,
                ["dotsPerSecondBefore"] = Stats.Round(ratePlain, 2),
                ["dotsPerSecondUnderLoad"] = Stats.Round(rateLoaded, 2),
                ["dotsPerSecondRatio"] = ratio,
                ["goals"] = "estopByteP99Ms <= 5, secondEstopByteP99Ms <= 5, retractDoneP99Ms <= retractDoneNoLoadP99Ms + 50, replyAfterRetractP99Ms <= 20, dotsPerSecondRatio >= 0.95",
                ["goalsMet"] = P99(loaded.Select(t => t.EstopByteMs)) <= 5 && P99(loaded.Select(t => t.SecondEstopByteMs)) <= 5
                    && retractP99 <= retractNoLoadP99 + 50 && replyAfterRetractP99 <= 20 && ratio >= 0.95,
                ["note"] = $"in-process controller and clients on one machine; simulated gantry at time scale {TimeScale}; e-stops on their own connection, the second from another client",
            };
        }
        finally
        {
            data.Delete(recursive: true);
        }
    }

    /// <summary>Placed dots per wall second over <see cref="RateWindow"/>.</summary>
    private static async Task<double> DotsPerSecondAsync(BenchRig rig, string sessionId)
    {
        var start = await rig.Sessions.GetAsync(new SessionRef { SessionId = sessionId });
        var started = Stopwatch.GetTimestamp();
        await Task.Delay(RateWindow);
        var end = await rig.Sessions.GetAsync(new SessionRef { SessionId = sessionId });
        if (end.State != SessionState.Running) throw new InvalidOperationException($"session {sessionId} is {end.State}: {end.Reason}");
        return (end.Dots.Placed - start.Dots.Placed) / Stopwatch.GetElapsedTime(started).TotalSeconds;
    }

    private sealed record Trial(double EstopByteMs, double SecondEstopByteMs, double RetractDoneMs, double ReplyMs, double ReplyAfterRetractMs);

    /// <summary>E-stop trials and what the simulator and the supervisor saw of them.</summary>
    private sealed class StopProbe
    {
        private readonly SimulatedGantry _simulator;
        private readonly BenchRig _rig;
        private readonly GrpcChannel _secondChannel;
        private readonly SafetyService.SafetyServiceClient _second;
        private readonly Lock _gate = new();
        private readonly List<long> _holdBytes = [];
        private readonly List<long> _arrivals = [];
        private TaskCompletionSource<long>? _firstBytesWritten;

        public StopProbe(SimulatedGantry simulator, BenchRig rig)
        {
            _simulator = simulator;
            _rig = rig;
            _secondChannel = rig.NewChannel();
            _second = new SafetyService.SafetyServiceClient(_secondChannel);
            simulator.RealtimeByteReceived += (_, e) =>
            {
                if (e.Command != (byte)GrblRealtime.FeedHold) return;
                lock (_gate) _holdBytes.Add(e.ArrivedTimestamp);
            };
            rig.Supervisor.StopBytesWritten += (_, e) =>
            {
                var arrived = e.ArrivedTimestamp;
                TaskCompletionSource<long>? first;
                lock (_gate)
                {
                    _arrivals.Add(arrived);
                    first = _firstBytesWritten;
                    _firstBytesWritten = null;
                }
                first?.TrySetResult(arrived);
            };
        }

        public async Task<Trial> TrialAsync(string sessionId, bool withSecond)
        {
            var current = await _rig.Sessions.GetAsync(new SessionRef { SessionId = sessionId });
            await _rig.WaitAsync(sessionId, s => s.Dots.Placed >= current.Dots.Placed + 1, mustKeepRunning: true);
            var bytesWritten = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_gate)
            {
                _holdBytes.Clear();
                _arrivals.Clear();
                _firstBytesWritten = bytesWritten;
            }
            var deadline = DateTime.UtcNow.Add(BenchRig.Timeout);
            var sent = Stopwatch.GetTimestamp();
            var first = _rig.Safety.EmergencyStopAsync(new EmergencyStopRequest { Source = "bench", Reason = "trial" }, deadline: deadline).ResponseAsync;
            Task<SafetyStatus>? second = null;
            if (withSecond)
            {
                // The second operator presses while the first stop sequence runs.
                await bytesWritten.Task.WaitAsync(BenchRig.Timeout);
                second = _second.EmergencyStopAsync(new EmergencyStopRequest { Source = "bench second", Reason = "trial" }, deadline: deadline).ResponseAsync;
            }
            var reply = await first;
            var repliedAt = Stopwatch.GetTimestamp();
            if (second is not null) await second;
            if (reply.StopError.Length > 0) throw new InvalidOperationException("stop sequence failed: " + reply.StopError);

            long[] holds, arrivals;
            lock (_gate)
            {
                holds = [.. _holdBytes];
                arrivals = [.. _arrivals];
            }
            double ByteMs(long arrival) => holds.Where(h => h >= arrival).Select(h => Ms(arrival, h)).DefaultIfEmpty(double.NaN).Min();
            var firstArrival = arrivals[0];
            var secondByteMs = withSecond && arrivals.Length > 1 ? ByteMs(arrivals[1]) : double.NaN;
            var firstByteMs = ByteMs(firstArrival);
            // The retract: the first upward rapid that starts after the feed hold reached the board.
            var holdSim = _simulator.RealtimeLog.Where(b => b.Command == (byte)GrblRealtime.FeedHold && b.Timestamp >= firstArrival).Min(b => b.SimSeconds);
            var retract = _simulator.MotionRecord.Where(m => m.Kind == SimMotionKind.Rapid && m.Completed && m.To.Z > m.From.Z && m.StartSimSeconds >= holdSim).MinBy(m => m.StartSimSeconds)
                ?? throw new InvalidOperationException("no retract in the simulator's motion record");
            var retractAt = _simulator.TimestampAt(retract.EndSimSeconds);

            await _rig.Safety.ResetEmergencyStopAsync(new ResetEmergencyStopRequest { Source = "bench" });
            var stopped = await _rig.WaitAsync(sessionId, s => s.State == SessionState.EmergencyStopped, mustKeepRunning: false);
            if (stopped.Dots.InDoubt > 0)
            {
                await _rig.Sessions.ResolveDotsAsync(new ResolveDotsRequest { SessionId = sessionId, AllInDoubt = true, Resolution = DotResolution.Skip, Operator = "bench" });
            }
            if (!(await _rig.Machine.GetStatusAsync(new GetMachineStatusRequest())).Homed) await _rig.Machine.HomeAsync(new HomeRequest());
            await _rig.Sessions.ResumeAsync(new SessionRef { SessionId = sessionId });
            return new Trial(firstByteMs, secondByteMs, Ms(firstArrival, retractAt), Ms(sent, repliedAt), Ms(retractAt, repliedAt));
        }

        private static double Ms(long from, long to) => Stopwatch.GetElapsedTime(from, to).TotalMilliseconds;
    }

    /// <summary>The watchers and the Get load, until disposed.</summary>
    private sealed class Load : IAsyncDisposable
    {
        private readonly List<GrpcChannel> _channels = [];
        private readonly CancellationTokenSource _stop = new();
        private readonly List<Task> _tasks = [];
        private long _gets;
        private long _getsStarted;
        private int _open;
        private int _refused;
        private int _failures;
        private string _refusal = "";
        private bool _disposed;

        public int WatchersOpen => Volatile.Read(ref _open);
        public int WatchRefused => Volatile.Read(ref _refused);
        public int WatcherFailures => Volatile.Read(ref _failures);
        public string RefusalMessage => _refusal;
        public double GetsPerSecondAchieved => Interlocked.Read(ref _gets) / Math.Max(1e-3, Stopwatch.GetElapsedTime(Interlocked.Read(ref _getsStarted)).TotalSeconds);

        public static async Task<Load> StartAsync(BenchRig rig, string sessionId)
        {
            var load = new Load();
            var opened = new List<Task>();
            for (var c = 0; c < Connections; c++)
            {
                // One channel = one HTTP/2 connection.
                var channel = rig.NewChannel();
                load._channels.Add(channel);
                var sessions = new SessionService.SessionServiceClient(channel);
                for (var w = 0; w < Watchers / Connections; w++)
                {
                    var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    opened.Add(ready.Task);
                    // Every tenth watcher reads slowly: it must get the latest state, not a backlog.
                    var slow = w % 10 == 9;
                    load._tasks.Add(load.WatchAsync(sessions, sessionId, slow, ready));
                }
            }
            await Task.WhenAll(opened).WaitAsync(BenchRig.Timeout);
            Interlocked.Exchange(ref load._getsStarted, Stopwatch.GetTimestamp());
            foreach (var channel in load._channels)
            {
                load._tasks.Add(load.GetLoopAsync(new SessionService.SessionServiceClient(channel), sessionId, GetsPerSecond / Connections));
            }
            return load;
        }

        private async Task WatchAsync(SessionService.SessionServiceClient sessions, string sessionId, bool slow, TaskCompletionSource ready)
        {
            try
            {
                using var call = sessions.Watch(new WatchSessionRequest { SessionId = sessionId }, cancellationToken: _stop.Token);
                var first = true;
                while (await call.ResponseStream.MoveNext(_stop.Token))
                {
                    if (first)
                    {
                        Interlocked.Increment(ref _open);
                        ready.TrySetResult();
                        first = false;
                    }
                    if (slow) await Task.Delay(250, _stop.Token);
                }
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.ResourceExhausted)
            {
                Interlocked.Increment(ref _refused);
                _refusal = e.Status.Detail;
                ready.TrySetResult();
                return;
            }
            catch (Exception e) when (e is OperationCanceledException or RpcException { StatusCode: StatusCode.Cancelled } && _stop.IsCancellationRequested)
            {
            }
#pragma warning disable CA1031 // a watch stream's every other failure is counted as a failure, and the bench goes on
            catch (Exception)
#pragma warning restore CA1031
            {
                Interlocked.Increment(ref _failures);
            }
            finally
            {
                ready.TrySetResult();
            }
            Interlocked.Decrement(ref _open);
        }

        /// <summary>Open loop: calls are started at the rate whatever the replies do (at most 200 outstanding).</summary>
        private async Task GetLoopAsync(SessionService.SessionServiceClient sessions, string sessionId, int perSecond)
        {
            var outstanding = 0;
            var started = Stopwatch.GetTimestamp();
            long issued = 0;
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(10));
            try
            {
                while (await timer.WaitForNextTickAsync(_stop.Token))
                {
                    var due = (long)(Stopwatch.GetElapsedTime(started).TotalSeconds * perSecond);
                    for (; issued < due; issued++)
                    {
                        if (Volatile.Read(ref outstanding) >= 200) continue;
                        Interlocked.Increment(ref outstanding);
                        _ = OneGetAsync(sessions, sessionId).ContinueWith(_ => Interlocked.Decrement(ref outstanding), TaskScheduler.Default);
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        private async Task OneGetAsync(SessionService.SessionServiceClient sessions, string sessionId)
        {
            try
            {
                await sessions.GetAsync(new SessionRef { SessionId = sessionId }, cancellationToken: _stop.Token);
                Interlocked.Increment(ref _gets);
            }
            catch (Exception e) when (e is RpcException or OperationCanceledException)
            {
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (_disposed) return;
            _disposed = true;
            await _stop.CancelAsync();
            try
            {
                await Task.WhenAll(_tasks).WaitAsync(TimeSpan.FromSeconds(30));
            }
            catch (Exception e) when (e is TimeoutException or OperationCanceledException or RpcException)
            {
            }
            foreach (var channel in _channels) channel.Dispose();
            _stop.Dispose();
        }
    }
}

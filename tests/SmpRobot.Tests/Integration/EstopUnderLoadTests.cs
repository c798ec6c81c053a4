using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Plans;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Services;
using SmpRobot.Controller.Storage;

namespace SmpRobot.Tests.Integration;

/// <summary>The e-stop path does not wait for anything watchers, snapshots or the ledger use, and a second e-stop never breaks the first.</summary>
[Collection(ControllerCollection.Name)]
public class EstopUnderLoadTests
{
    private static readonly TimeSpan Timeout = ControllerFixture.Timeout;

    private static async Task<(ControllerFixture Controller, string SessionId)> RunningSessionAsync(double timeScale = 20, Func<Controller.ControllerOptions, Controller.ControllerOptions>? configure = null)
    {
        var c = await ControllerFixture.StartAsync(timeScale: timeScale, configure: configure);
        await c.HomeAsync();
        await c.StartHeartbeatAsync();
        var session = await c.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = DemoPlanGenerator.Generate(400, seed: 5) });
        await c.Sessions.StartAsync(new SessionRef { SessionId = session.Id });
        await c.WaitForAsync(session.Id, s => s.Dots.Placed >= 3);
        return (c, session.Id);
    }

    [Fact]
    public async Task The_stop_bytes_and_the_retract_do_not_wait_for_a_locked_ledger()
    {
        var (c, sessionId) = await RunningSessionAsync();
        await using var _ = c;
        var ledger = c.Services.GetRequiredService<LedgerStore>();
        var supervisor = c.Services.GetRequiredService<SafetySupervisor>();
        var holdByte = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var sequence = new TaskCompletionSource<(IReadOnlyList<string> Steps, string Error)>(TaskCreationOptions.RunContinuationsAsynchronously);
        c.Simulator.RealtimeByteReceived += (_, e) =>
        {
            if (e.Command == (byte)GrblRealtime.FeedHold) holdByte.TrySetResult();
        };
        supervisor.StopSequenceFinished += (_, e) => sequence.TrySetResult((e.Steps, e.Error));

        // Another thread holds the ledger (as a snapshot build or a runner's fsync would) for the whole stop.
        using var locked = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var holder = new Thread(() =>
        {
            using (ledger.GateForTests.EnterScope())
            {
                locked.Set();
                try
                {
                    release.Wait(Timeout);
                }
                catch (ObjectDisposedException)
                {
                    // The test failed before its finally and disposed the event: an exception left on this thread would end the test host.
                }
            }
        });
        holder.Start();
        Assert.True(locked.Wait(Timeout));
        Task<SafetyStatus> reply;
        try
        {
            reply = c.Safety.EmergencyStopAsync(new EmergencyStopRequest { Source = "test", Reason = "ledger locked" }, deadline: DateTime.UtcNow.Add(Timeout)).ResponseAsync;
            await holdByte.Task.WaitAsync(Timeout);
            var (steps, error) = await sequence.Task.WaitAsync(Timeout);
            Assert.Equal("", error);
            Assert.Equal(["queue-flushed", "retracted"], steps);
            Assert.False(c.Simulator.SpindleOn);
            // Only the record of it waits for the ledger (it is written before the reply).
            Assert.False(reply.IsCompleted);
        }
        finally
        {
            release.Set();
            holder.Join(Timeout);
        }
        var status = await reply.WaitAsync(Timeout);
        Assert.True(status.EstopLatched);
        Assert.Equal(["feed-hold", "needle-off", "queue-flushed", "retracted"], status.StopSteps);
        Assert.Contains(ledger.ReadAudit(null), a => a.Kind == "estop" && a.Message.Contains("ledger locked", StringComparison.Ordinal));
        var stopped = await c.WaitForAsync(sessionId, ControllerFixture.IsFinished);
        Assert.Equal(SessionState.EmergencyStopped, stopped.State);
    }

    [Fact]
    public async Task A_second_estop_during_the_first_ones_stop_sequence_is_answered_and_both_complete()
    {
        var (c, sessionId) = await RunningSessionAsync(timeScale: 5);
        await using var _ = c;
        var supervisor = c.Services.GetRequiredService<SafetySupervisor>();
        using var secondChannel = GrpcChannel.ForAddress(c.Address);
        var secondClient = new SafetyService.SafetyServiceClient(secondChannel);
        var firstBytes = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var bytesWritten = 0;
        supervisor.StopBytesWritten += (_, e) =>
        {
            if (e.HoldWrittenTimestamp != 0 && Interlocked.Increment(ref bytesWritten) == 1) firstBytes.TrySetResult();
        };

        var first = c.Safety.EmergencyStopAsync(new EmergencyStopRequest { Source = "first", Reason = "test" }, deadline: DateTime.UtcNow.Add(Timeout)).ResponseAsync;
        await firstBytes.Task.WaitAsync(Timeout);
        var second = secondClient.EmergencyStopAsync(new EmergencyStopRequest { Source = "second", Reason = "test" }, deadline: DateTime.UtcNow.Add(Timeout)).ResponseAsync;

        var replies = await Task.WhenAll(first, second).WaitAsync(Timeout);
        Assert.Equal(2, Volatile.Read(ref bytesWritten));
        Assert.All(replies, r =>
        {
            Assert.True(r.EstopLatched);
            Assert.Equal("", r.StopError);
            Assert.Equal("first", r.EstopSource);
            Assert.Contains("retracted", r.StopSteps);
        });
        // After the last hold byte the needle only went straight up, with the drive off, and is up now.
        var lastHold = c.Simulator.RealtimeLog.Last(b => b.Command == (byte)GrblRealtime.FeedHold);
        var after = c.Simulator.MotionRecord.Where(m => m.StartSimSeconds >= lastHold.SimSeconds).ToList();
        Assert.Contains(after, m => m.Completed && m.To.Z > m.From.Z);
        Assert.All(after, m => Assert.True(!m.SpindleOn && m.To.X == m.From.X && m.To.Y == m.From.Y && m.To.Z >= m.From.Z, $"{m} after the stop"));
        Assert.Equal("Idle", c.Simulator.State);
        var stopped = await c.WaitForAsync(sessionId, ControllerFixture.IsFinished);
        Assert.Equal(SessionState.EmergencyStopped, stopped.State);
    }

    [Fact]
    public async Task Many_status_requests_at_once_share_firmware_status_queries()
    {
        await using var c = await ControllerFixture.StartAsync(timeScale: 20);
        await c.HomeAsync();
        var before = c.Simulator.RealtimeLog.Count(b => b.Command == (byte)'?');
        var replies = await Task.WhenAll(Enumerable.Range(0, 300).Select(_ => c.Machine.GetStatusAsync(new GetMachineStatusRequest()).ResponseAsync)).WaitAsync(Timeout);
        var queries = c.Simulator.RealtimeLog.Count(b => b.Command == (byte)'?') - before;
        Assert.All(replies, r => Assert.Equal("Idle", r.State));
        // 300 callers, a handful of queries (plus the 10 Hz polling meanwhile), never one each.
        Assert.InRange(queries, 0, 40);
    }

    [Fact]
    public async Task Watches_beyond_the_caps_are_refused_naming_the_limit_and_the_estop_still_goes_through()
    {
        var (c, sessionId) = await RunningSessionAsync(configure: o => o with { MaxWatchesPerConnection = 3, MaxWatchesTotal = 5 });
        await using var _ = c;
        using var cts = new CancellationTokenSource(Timeout);
        using var otherChannel = GrpcChannel.ForAddress(c.Address);
        using var thirdChannel = GrpcChannel.ForAddress(c.Address);
        var calls = new List<AsyncServerStreamingCall<SessionEvent>>();
        async Task<AsyncServerStreamingCall<SessionEvent>> OpenAsync(GrpcChannel channel)
        {
            var call = new SessionService.SessionServiceClient(channel).Watch(new WatchSessionRequest { SessionId = sessionId }, cancellationToken: cts.Token);
            calls.Add(call);
            Assert.True(await call.ResponseStream.MoveNext(cts.Token));
            return call;
        }
        try
        {
            for (var i = 0; i < 3; i++) await OpenAsync(c.Channel);
            var perConnection = await Assert.ThrowsAsync<RpcException>(() => OpenAsync(c.Channel));
            Assert.Equal(StatusCode.ResourceExhausted, perConnection.StatusCode);
            Assert.Contains("at most 3 per connection", perConnection.Status.Detail);

            // Another connection may still watch, up to the total (machine-status watches count too).
            await OpenAsync(otherChannel);
            using var machineWatch = new MachineService.MachineServiceClient(otherChannel).WatchStatus(new WatchMachineStatusRequest(), cancellationToken: cts.Token);
            Assert.True(await machineWatch.ResponseStream.MoveNext(cts.Token));
            var total = await Assert.ThrowsAsync<RpcException>(() => OpenAsync(thirdChannel));
            Assert.Equal(StatusCode.ResourceExhausted, total.StatusCode);
            Assert.Contains("at most 5 in all", total.Status.Detail);

            // Unary calls and the e-stop are never capped.
            Assert.Equal(sessionId, (await c.Sessions.GetAsync(new SessionRef { SessionId = sessionId })).Id);
            var stop = await c.Safety.EmergencyStopAsync(new EmergencyStopRequest { Source = "test" }, deadline: DateTime.UtcNow.Add(Timeout));
            Assert.Equal("", stop.StopError);
            Assert.True(stop.EstopLatched);

            // A watch that ends gives its slot back once the server sees the reset stream; then the connection may watch again.
            var limiter = c.Services.GetRequiredService<WatchLimiter>();
            var released = limiter.NextRelease;
            calls[0].Dispose();
            await released.WaitAsync(cts.Token);
            await OpenAsync(c.Channel);
        }
        finally
        {
            foreach (var call in calls) call.Dispose();
        }
    }
}

using Grpc.Core;
using Grpc.Health.V1;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Tests.Integration;

/// <summary>What an independent client can send: bytes that are not a message, oversized ids, out-of-range values.</summary>
[Collection(ControllerCollection.Name)]
public class ServiceBoundaryTests
{
    private static readonly Marshaller<byte[]> Raw = Marshallers.Create(b => b, b => b);

    private static Task<byte[]> CallRawAsync(ControllerFixture c, string service, string method, byte[] body) =>
        c.Channel.CreateCallInvoker().AsyncUnaryCall(new Method<byte[], byte[]>(MethodType.Unary, service, method, Raw, Raw), null,
            new CallOptions(deadline: DateTime.UtcNow.AddSeconds(20)), body).ResponseAsync;

    [Fact]
    public async Task Bytes_that_are_not_the_request_message_are_invalid_argument_naming_the_message()
    {
        await using var c = await ControllerFixture.StartAsync();
        // A field header with a wire type protobuf does not have, then a varint that never ends.
        byte[] garbage = [0x0F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        var e = await Assert.ThrowsAsync<RpcException>(() => CallRawAsync(c, "smprobot.v1.SessionService", "Get", garbage));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("not a valid SessionRef message", e.Status.Detail);
        var jog = await Assert.ThrowsAsync<RpcException>(() => CallRawAsync(c, "smprobot.v1.MachineService", "Jog", garbage));
        Assert.Equal(StatusCode.InvalidArgument, jog.StatusCode);
        Assert.Contains("JogRequest", jog.Status.Detail);
        Assert.False((await c.Safety.GetSafetyStatusAsync(new GetSafetyStatusRequest())).EstopLatched);
    }

    [Fact]
    public async Task A_streamed_heartbeat_that_is_not_a_message_ends_its_stream_with_invalid_argument()
    {
        await using var c = await ControllerFixture.StartAsync();
        var method = new Method<byte[], byte[]>(MethodType.DuplexStreaming, "smprobot.v1.SafetyService", "OperatorHeartbeat", Raw, Raw);
        using var call = c.SafetyChannel.CreateCallInvoker().AsyncDuplexStreamingCall(method, null, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(20)));
        await call.RequestStream.WriteAsync([0x0F, 0xFF, 0xFF]);
        var e = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("not valid", e.Status.Detail);
    }

    [Fact]
    public async Task An_emergency_stop_whose_body_cannot_be_read_still_stops()
    {
        await using var c = await ControllerFixture.StartAsync();
        await c.HomeAsync();
        var reply = SafetyStatus.Parser.ParseFrom(await CallRawAsync(c, "smprobot.v1.SafetyService", "EmergencyStop", [0x0F, 0xFF, 0xFF]));
        Assert.True(reply.EstopLatched);
        Assert.Contains("could not be read", reply.EstopReason);
        Assert.Contains("retracted", reply.StopSteps);
    }

    [Fact]
    public async Task Oversized_ids_are_refused_at_once_without_echoing_them()
    {
        await using var c = await ControllerFixture.StartAsync();
        var huge = new string('s', 100_000);
        var e = await Assert.ThrowsAsync<RpcException>(() => c.Sessions.GetAsync(new SessionRef { SessionId = huge }, deadline: DateTime.UtcNow.AddSeconds(20)).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("session_id is 100000 characters long; at most 128", e.Status.Detail);
        Assert.True(e.Status.Detail.Length < 200);
        var resolve = await Assert.ThrowsAsync<RpcException>(() => c.Sessions.ResolveDotsAsync(new ResolveDotsRequest { SessionId = "s", DotIds = { huge }, Resolution = DotResolution.Skip, Operator = "x" }, deadline: DateTime.UtcNow.AddSeconds(20)).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, resolve.StatusCode);
        var watch = c.Sessions.Watch(new WatchSessionRequest { SessionId = huge }, deadline: DateTime.UtcNow.AddSeconds(20));
        var watchError = await Assert.ThrowsAsync<RpcException>(() => watch.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.InvalidArgument, watchError.StatusCode);
        // A normal unknown id is still NOT_FOUND.
        var missing = await Assert.ThrowsAsync<RpcException>(() => c.Sessions.GetAsync(new SessionRef { SessionId = "s-nope" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);
    }

    [Theory]
    [InlineData(-100)]
    [InlineData(1e9)]
    [InlineData(double.NaN)]
    public async Task A_jog_feed_outside_the_profile_is_refused_and_nothing_moves(double feed)
    {
        await using var c = await ControllerFixture.StartAsync();
        await c.HomeAsync();
        var motions = c.Simulator.MotionRecord.Count;
        var e = await Assert.ThrowsAsync<RpcException>(() => c.Machine.JogAsync(new JogRequest { DxMm = 1, FeedMmPerMin = feed }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("jog feed", e.Status.Detail);
        Assert.Contains("up to 6000 mm/min", e.Status.Detail);
        Assert.Equal(motions, c.Simulator.MotionRecord.Count);
    }

    [Fact]
    public async Task The_health_check_reports_the_gantrys_real_state()
    {
        await using var c = await ControllerFixture.StartAsync(configure: o => o with { ConnectAtStart = false });
        var health = new Health.HealthClient(c.Channel);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest())).Status);
        await c.Machine.ConnectAsync(new ConnectRequest());
        // Connected but not homed: serving (the operator can home), and said so in the description.
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest())).Status);
        await c.HomeAsync();
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest())).Status);
        using var watch = c.Machine.WatchStatus(new WatchMachineStatusRequest(), deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.True(await watch.ResponseStream.MoveNext(CancellationToken.None));
        c.Simulator.Disconnect();
        // The link loss shows once a status poll goes unanswered (10 Hz, 1 s timeout); the machine watch says when.
        while (watch.ResponseStream.Current.Connected)
        {
            Assert.True(await watch.ResponseStream.MoveNext(CancellationToken.None), "the machine watch ended while still connected");
        }
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest())).Status);
    }
}

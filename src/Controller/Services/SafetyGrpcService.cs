using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Sessions;

namespace SmpRobot.Controller.Services;

/// <summary>smprobot.v1.SafetyService: e-stop, reset and the operator dead-man. Never rate-limited.</summary>
internal sealed class SafetyGrpcService(SafetySupervisor safety, OperatorPresence presence, SessionManager sessions, TimeProvider time) : SafetyService.SafetyServiceBase
{
    /// <summary>HTTP path of the EmergencyStop method.</summary>
    public const string EmergencyStopPath = "/smprobot.v1.SafetyService/EmergencyStop";

    /// <summary>HttpContext item holding the TimeProvider timestamp of the request's arrival.</summary>
    public const string ArrivedTimestampKey = "smp.estop.arrived";

    public override async Task<SafetyStatus> EmergencyStop(EmergencyStopRequest request, ServerCallContext context)
    {
        var items = context.GetHttpContext().Items;
        var arrived = items.TryGetValue(ArrivedTimestampKey, out var stamp) && stamp is long ts ? ts : time.GetTimestamp();
        var reason = items.TryGetValue(RequestValidation.UnreadableEmergencyStopKey, out var unreadable)
            ? $"(the request's body could not be read: {unreadable})"
            : request.Reason;
        // The client's deadline or disconnect must not cut the stop sequence short.
        var state = await safety.EmergencyStopAsync(
            // Never refused for its length: cut to size (the stop bytes are already on the wire by then anyway).
            Bounded.Cut(string.IsNullOrWhiteSpace(request.Source) ? context.Peer : request.Source, Bounded.MaxNameLength), Bounded.Cut(reason, Bounded.MaxReasonLength), arrived, CancellationToken.None);
        return Mapping.ToProto(state, presence.AnyPresent);
    }

    public override Task<SafetyStatus> ResetEmergencyStop(ResetEmergencyStopRequest request, ServerCallContext context) =>
        Task.FromResult(Mapping.ToProto(safety.Reset(Bounded.Cut(Callers.Recorded(context, Bounded.Text(string.IsNullOrWhiteSpace(request.Source) ? context.Peer : request.Source, "source", Bounded.MaxNameLength)), 2 * Bounded.MaxNameLength)), presence.AnyPresent));

    public override Task<SafetyStatus> GetSafetyStatus(GetSafetyStatusRequest request, ServerCallContext context) =>
        Task.FromResult(Mapping.ToProto(safety.State, presence.AnyPresent));

    public override async Task OperatorHeartbeat(IAsyncStreamReader<Heartbeat> requestStream, IServerStreamWriter<SafetyStatus> responseStream, ServerCallContext context)
    {
        using var stream = presence.OpenStream();
        // Ends with the controller too (once its session has paused), so shutdown does not wait for the console to hang up.
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, sessions.Quiesced);
        try
        {
            await foreach (var beat in requestStream.ReadAllAsync(ended.Token))
            {
                // Cut, not refused: refusing would end the stream, and with it the operator's presence.
                var consoleId = Bounded.Cut(beat.ConsoleId, Bounded.MaxIdLength);
                var accepted = stream.Beat(consoleId, beat.Sequence, Bounded.Cut(string.IsNullOrWhiteSpace(beat.Operator) ? context.Peer : beat.Operator, Bounded.MaxNameLength));
                // A beat that does not advance the sequence is answered (the console sees the state) but counts for nothing.
                await responseStream.WriteAsync(Mapping.ToProto(safety.State, accepted && presence.IsPresent(stream.ConsoleId)), ended.Token);
            }
        }
        catch (OperationCanceledException)
        {
            // The console went away: the dead-man counts it absent from now on.
        }
        catch (IOException e) when (e is not Google.Protobuf.InvalidProtocolBufferException)
        {
            // Same: the connection dropped.
        }
    }
}

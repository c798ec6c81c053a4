using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Storage;
using SmpRobot.Controller.Surface;

namespace SmpRobot.Controller.Services;

/// <summary>Thin: probing and registering the scalp of a session's head position (<see cref="SessionSurface"/>).</summary>
internal sealed class SurfaceGrpcService(SessionSurface surface, LedgerStore ledger, Sessions.SessionManager sessions) : SurfaceService.SurfaceServiceBase
{
    public override Task<SurfaceNeededReply> SurfaceNeeded(SurfaceNeededRequest request, ServerCallContext context)
    {
        var id = Id(request.SessionId);
        var (patch, needed, reason) = sessions.SurfaceNeeded(id);
        var (_, matchNeeded, touchUp, matchReason) = sessions.EarlierDotsMatchNeeded(id);
        return Task.FromResult(new SurfaceNeededReply { Patch = (uint)patch, Needed = needed, Reason = reason, MatchNeeded = matchNeeded, MatchReason = matchReason, TouchUp = touchUp });
    }

    public override async Task<SurfaceRegistration> ProbeSurface(ProbeSurfaceRequest request, ServerCallContext context)
    {
        var outcome = await surface.ProbeAsync(Id(request.SessionId), (int)Math.Min(request.Patch, int.MaxValue), (int)Math.Min(request.Points, int.MaxValue), context.CancellationToken);
        return SessionSurface.ToProto(outcome.Record, outcome.Contacts, outcome.HeadFromScalp, outcome.Seconds);
    }

    public override Task<ListSurfaceRegistrationsReply> ListSurfaceRegistrations(ListSurfaceRegistrationsRequest request, ServerCallContext context)
    {
        var id = Id(request.SessionId);
        var reply = new ListSurfaceRegistrationsReply();
        reply.Registrations.Add(ledger.ListSurfaceRegistrations(id).Select(r => SessionSurface.ToProto(r, null, null, 0)));
        return Task.FromResult(reply);
    }

    private static string Id(string sessionId) =>
        string.IsNullOrWhiteSpace(sessionId) ? throw new RpcException(new Status(StatusCode.InvalidArgument, "session_id is required")) : Bounded.Text(sessionId, "session_id", Bounded.MaxIdLength);
}

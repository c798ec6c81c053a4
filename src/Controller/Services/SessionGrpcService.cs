using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Plans;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Sessions;
using SmpRobot.Machine;

namespace SmpRobot.Controller.Services;

/// <summary>smprobot.v1.SessionService: translates and delegates to <see cref="SessionManager"/>.</summary>
internal sealed class SessionGrpcService(SessionManager sessions, WatchLimiter watches, SessionEventCache eventCache) : SessionService.SessionServiceBase
{
    public override Task<ValidatePlanResponse> ValidatePlan(ValidatePlanRequest request, ServerCallContext context)
    {
        var result = Validate(request.SourceCase, request.Plan, request.PlanJson);
        return Task.FromResult(new ValidatePlanResponse
        {
            PlanName = result.Plan!.Name,
            DotCount = result.Plan.Dots.Count,
            EstimatedKinematicSeconds = sessions.EstimateKinematicSeconds(result.Plan),
            ProfileName = sessions.Profile.Name,
        });
    }

    public override Task<Session> CreateSession(CreateSessionRequest request, ServerCallContext context)
    {
        var source = request.SourceCase switch
        {
            CreateSessionRequest.SourceOneofCase.Plan => ValidatePlanRequest.SourceOneofCase.Plan,
            CreateSessionRequest.SourceOneofCase.PlanJson => ValidatePlanRequest.SourceOneofCase.PlanJson,
            _ => ValidatePlanRequest.SourceOneofCase.None,
        };
        var (session, _) = sessions.Create(Validate(source, request.Plan, request.PlanJson), request.HeadModel.IsEmpty ? null : request.HeadModel.ToByteArray());
        return Task.FromResult(Mapping.ToProto(session!));
    }

    public override async Task<Session> Start(SessionRef request, ServerCallContext context) =>
        Mapping.ToProto(await sessions.StartAsync(Id(request), request.CheckFirst, context.CancellationToken, Override(request, context), Console(request), SurfaceOverride(request)));

    public override Task<Session> Pause(SessionRef request, ServerCallContext context) => Task.FromResult(Mapping.ToProto(sessions.Pause(Id(request))));

    public override Task<Session> Resume(SessionRef request, ServerCallContext context) => Task.FromResult(Mapping.ToProto(sessions.Resume(Id(request), Override(request, context), Console(request), SurfaceOverride(request))));

    public override Task<Session> Abort(SessionRef request, ServerCallContext context) => Task.FromResult(Mapping.ToProto(sessions.Abort(Id(request))));

    public override Task<Session> Get(SessionRef request, ServerCallContext context) => Task.FromResult(Mapping.ToProto(sessions.Get(Id(request))));

    public override Task<ListSessionsResponse> List(ListSessionsRequest request, ServerCallContext context)
    {
        var response = new ListSessionsResponse();
        response.Sessions.Add(sessions.List().Select(Mapping.ToProto));
        return Task.FromResult(response);
    }

    public override async Task Watch(WatchSessionRequest request, IServerStreamWriter<SessionEvent> responseStream, ServerCallContext context)
    {
        var id = string.IsNullOrEmpty(request.SessionId)
            ? sessions.CurrentSessionId ?? throw new RpcException(new Status(StatusCode.NotFound, "there is no session to watch"))
            : Bounded.Text(request.SessionId, "session_id", Bounded.MaxIdLength);
        using var slot = watches.Acquire(context.GetHttpContext().Connection.Id);
        (Storage.SessionPhase Phase, string Reason)? last = null;
        await foreach (var published in sessions.WatchAsync(id, context.CancellationToken))
        {
            // Built once per publication and shared by every watcher; only the first event is this watcher's own.
            var events = eventCache.For(published);
            var key = (published.Snapshot.Record.Phase, published.Snapshot.Record.Reason);
            SessionEvent message;
            if (last is null)
            {
                message = events.Plain.Clone();
                message.Message = "watching session " + id;
            }
            else
            {
                message = key != last.Value ? events.PhaseChange : events.Plain;
            }
            last = key;
            await responseStream.WriteAsync(message, context.CancellationToken);
        }
    }

    public override Task<Session> ContinueInNewSession(SessionRef request, ServerCallContext context) =>
        Task.FromResult(Mapping.ToProto(sessions.ContinueInNewSession(Id(request)).New));

    public override Task<StartReadiness> CheckStart(CheckStartRequest request, ServerCallContext context)
    {
        var overrideRequest = request.CalibrationOverride is { } o
            ? new SmpRobot.Controller.Calibration.CalibrationOverrideRequest(Callers.Recorded(context, Bounded.Text(o.Operator, "calibration_override.operator", Bounded.MaxNameLength)), Bounded.Text(o.Reason, "calibration_override.reason", Bounded.MaxReasonLength))
            : null;
        var readiness = sessions.CheckStart(string.IsNullOrWhiteSpace(request.ConsoleId) ? null : Bounded.Text(request.ConsoleId, "console_id", Bounded.MaxIdLength), overrideRequest);
        var reply = new StartReadiness { Ready = readiness.Ready, NeedsHoming = readiness.NeedsHoming };
        reply.Refusals.Add(readiness.Refusals);
        return Task.FromResult(reply);
    }

    public override Task<Session> ResolveDots(ResolveDotsRequest request, ServerCallContext context) =>
        Task.FromResult(Mapping.ToProto(sessions.Resolve(
            Bounded.Text(request.SessionId, "session_id", Bounded.MaxIdLength),
            request.DotIds.Select(id => Bounded.Text(id, "dot_ids", Bounded.MaxIdLength)).ToList(),
            request.AllInDoubt, Mapping.ToLedger(request.Resolution), Callers.Recorded(context, Bounded.Text(request.Operator, "operator", Bounded.MaxNameLength)))));

    private PlanValidationResult Validate(ValidatePlanRequest.SourceOneofCase source, Plan? plan, string planJson)
    {
        var result = source switch
        {
            ValidatePlanRequest.SourceOneofCase.Plan => sessions.ValidatePlan(plan!),
            ValidatePlanRequest.SourceOneofCase.PlanJson => sessions.ValidatePlanJson(planJson),
            _ => throw new RpcException(new Status(StatusCode.InvalidArgument, "give the plan, either as a message or as plan_json")),
        };
        return result.IsValid ? result : throw Mapping.PlanRejected(result);
    }

    private static SmpRobot.Controller.Calibration.CalibrationOverrideRequest? Override(SessionRef request, ServerCallContext context) =>
        request.CalibrationOverride is { } o
            ? new SmpRobot.Controller.Calibration.CalibrationOverrideRequest(Callers.Recorded(context, Bounded.Text(o.Operator, "calibration_override.operator", Bounded.MaxNameLength)), Bounded.Text(o.Reason, "calibration_override.reason", Bounded.MaxReasonLength))
            : null;

    private static string? Console(SessionRef request) =>
        string.IsNullOrWhiteSpace(request.ConsoleId) ? null : Bounded.Text(request.ConsoleId, "console_id", Bounded.MaxIdLength);

    private static string? SurfaceOverride(SessionRef request) =>
        string.IsNullOrWhiteSpace(request.SurfaceOverride) ? null : Bounded.Text(request.SurfaceOverride, "surface_override", Bounded.MaxReasonLength);

    private static string Id(SessionRef request) =>
        string.IsNullOrWhiteSpace(request.SessionId) ? throw new RpcException(new Status(StatusCode.InvalidArgument, "session_id is required")) : Bounded.Text(request.SessionId, "session_id", Bounded.MaxIdLength);
}

using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Sessions;
using SmpRobot.Vision;

namespace SmpRobot.Controller.Services;

/// <summary>smprobot.v1.MachineService: connect, home, jog and status.</summary>
internal sealed class MachineGrpcService(GantryConnection gantry, SessionManager sessions, SafetySupervisor safety, TimeProvider time) : MachineService.MachineServiceBase
{
    public override async Task<MachineStatus> Connect(ConnectRequest request, ServerCallContext context)
    {
        if (sessions.CurrentSessionId is { } id && sessions.Get(id).Record.Phase is Storage.SessionPhase.Running or Storage.SessionPhase.Pausing)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"session {id} is running; pause it before reconnecting"));
        }
        await gantry.ConnectAsync(context.CancellationToken);
        return await Status(context.CancellationToken);
    }

    public override async Task<MachineStatus> Home(HomeRequest request, ServerCallContext context)
    {
        await sessions.HomeAsync(context.CancellationToken);
        return await Status(context.CancellationToken);
    }

    public override async Task<MachineStatus> Jog(JogRequest request, ServerCallContext context)
    {
        await sessions.JogAsync(new Vec3(request.DxMm, request.DyMm, request.DzMm), request.FeedMmPerMin, context.CancellationToken);
        return await Status(context.CancellationToken);
    }

    public override Task<MachineStatus> GetStatus(GetMachineStatusRequest request, ServerCallContext context) => Status(context.CancellationToken);

    public override async Task WatchStatus(WatchMachineStatusRequest request, IServerStreamWriter<MachineStatus> responseStream, ServerCallContext context)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1.0 / gantry.Profile.StatusPollHz), time);
        do
        {
            await responseStream.WriteAsync(Mapping.ToProto(gantry, safety, time.GetUtcNow()), context.CancellationToken);
        }
        while (await timer.WaitForNextTickAsync(context.CancellationToken));
    }

    /// <summary>A fresh status report when the link is up; the last known one otherwise.</summary>
    private async Task<MachineStatus> Status(CancellationToken cancellationToken)
    {
        if (gantry.IsConnected)
        {
            await gantry.RequireClient().QueryStatusAsync(cancellationToken);
        }
        return Mapping.ToProto(gantry, safety, time.GetUtcNow());
    }
}

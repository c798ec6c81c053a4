using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Motion;
using SmpRobot.Geometry;
using SmpRobot.Machine;

namespace SmpRobot.Controller.Services;

/// <summary>smprobot.v1.MachineService: connect, home, jog, status and firmware settings.</summary>
internal sealed class MachineGrpcService(GantryConnection gantry, ManualMotion manual, SafetySupervisor safety, SafetySwitches switches, WatchLimiter watches, TimeProvider time) : MachineService.MachineServiceBase
{
    /// <summary>Largest profile text accepted by FirmwareSettings (profiles are a few KiB).</summary>
    public const int MaxProfileJsonChars = 256 * 1024;

    public override async Task<MachineStatus> Connect(ConnectRequest request, ServerCallContext context)
    {
        RequireMachineFree("reconnect");
        await gantry.ConnectAsync(context.CancellationToken);
        return await Status(context.CancellationToken);
    }

    public override async Task<MachineStatus> Home(HomeRequest request, ServerCallContext context)
    {
        await manual.HomeAsync(context.CancellationToken);
        return await Status(context.CancellationToken);
    }

    public override async Task<MachineStatus> Jog(JogRequest request, ServerCallContext context)
    {
        await manual.JogAsync(new Vec3(request.DxMm, request.DyMm, request.DzMm), request.FeedMmPerMin, context.CancellationToken);
        return await Status(context.CancellationToken);
    }

    public override Task<MachineStatus> GetStatus(GetMachineStatusRequest request, ServerCallContext context) => Status(context.CancellationToken);

    public override async Task WatchStatus(WatchMachineStatusRequest request, IServerStreamWriter<MachineStatus> responseStream, ServerCallContext context)
    {
        using var slot = watches.Acquire(context.GetHttpContext().Connection.Id);
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1.0 / gantry.Profile.StatusPollHz), time);
        do
        {
            await responseStream.WriteAsync(Snapshot(), context.CancellationToken);
        }
        while (await timer.WaitForNextTickAsync(context.CancellationToken));
    }

    public override async Task<FirmwareSettingsResponse> FirmwareSettings(FirmwareSettingsRequest request, ServerCallContext context)
    {
        var ownProfile = request.ProfileJson.Length == 0;
        SmpRobot.Machine.MachineProfile profile;
        if (ownProfile)
        {
            profile = gantry.Profile;
        }
        else
        {
            if (request.ProfileJson.Length > MaxProfileJsonChars)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"the profile text is longer than {MaxProfileJsonChars} characters"));
            }
            try
            {
                profile = SmpRobot.Machine.FirmwareSettings.ParseProfile(request.ProfileJson, "(given)");
            }
            catch (InvalidDataException e)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, e.Message));
            }
        }

        var expected = SmpRobot.Machine.FirmwareSettings.Expected(profile);
        var response = new FirmwareSettingsResponse { ProfileName = profile.Name, Connected = gantry.IsConnected };
        response.Expected.Add(expected.Select(s => new Contracts.V1.FirmwareSetting { Number = s.Number, Name = s.Name, Value = s.Value, Informative = s.Informative }));
        if (!gantry.IsConnected)
        {
            response.CheckError = $"the gantry ({gantry.Description}) is not connected";
            return response;
        }
        if (ownProfile)
        {
            // The check made at connect: the board's settings do not change while it is connected.
            response.Checked = gantry.SettingsChecked;
            response.CheckError = gantry.SettingsError;
            response.Differences.Add(gantry.SettingsDifferences.Select(ToProto));
            return response;
        }
        if (gantry.Lease.Holder is { } holder)
        {
            response.CheckError = $"{holder.BusyText}: the board is compared with another profile only while nothing uses the machine";
            return response;
        }
        try
        {
            var differences = await gantry.ReadSettingsDifferencesAsync(expected, context.CancellationToken);
            response.Checked = true;
            response.Differences.Add(differences.Select(ToProto));
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or GantryFaultException)
        {
            response.CheckError = e.Message;
        }
        return response;
    }

    public static SmpRobot.Contracts.V1.SettingDifference ToProto(SmpRobot.Machine.SettingDifference d) =>
        new() { Number = d.Number, Name = d.Name, Expected = d.Expected, Actual = d.Actual, Informative = d.Informative };

    /// <summary>The status message with the firmware settings check of the last (re)connect.</summary>
    private MachineStatus Snapshot(ActivityRead? activity = null)
    {
        var status = Mapping.ToProto(gantry, safety, time.GetUtcNow(), switches, activity);
        status.SettingsChecked = gantry.SettingsChecked;
        status.SettingsDifferences.Add(gantry.SettingsDifferences.Select(ToProto));
        // Before the first connect there is nothing to say beyond "not connected".
        if (gantry.Client is not null) status.SettingsProblem = gantry.SettingsMismatch ?? "";
        return status;
    }

    /// <summary>A fresh status report when the link is up; the last known one otherwise.</summary>
    private async Task<MachineStatus> Status(CancellationToken cancellationToken)
    {
        // The activity is read before the firmware is asked. With none under way, only a report read after the
        // last one ended will do: the answer then proves the state was measured after that operation (its own
        // stop included), so a console waiting for "not moving and nothing under way" never takes a report
        // from before a lift for the end of it. Reports read after that moment are still shared by callers.
        var (current, lastEnded) = gantry.Activity.Read();
        var activity = new ActivityRead(current);
        if (gantry.IsConnected && gantry.Client?.LockedByAlarm is null)
        {
            await gantry.FreshStatusAsync(cancellationToken, receivedAfterTimestamp: current is null ? lastEnded : 0);
        }
        return Snapshot(activity);
    }

    /// <summary>Refuses while anything holds the machine's lease (a session, a calibration, a check, a jog, homing).</summary>
    private void RequireMachineFree(string what)
    {
        if (gantry.Lease.Holder is { } holder) throw new RefusedException(RefusalKind.FailedPrecondition, $"cannot {what}: {holder.BusyText}");
    }
}

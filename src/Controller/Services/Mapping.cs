using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Plans;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Sessions;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Machine;

namespace SmpRobot.Controller.Services;

/// <summary>Translation between the domain and smprobot.v1 messages, and domain errors to gRPC statuses.</summary>
internal static class Mapping
{
    /// <summary>Trailer that carries <see cref="PlanViolations"/> with an INVALID_ARGUMENT plan reply.</summary>
    public const string ViolationsTrailer = "plan-violations-bin";

    public static Session ToProto(SessionSnapshot s)
    {
        var r = s.Record;
        var proto = new Session
        {
            Id = r.Id,
            PlanName = r.PlanName,
            State = (SessionState)(int)r.Phase,
            Reason = r.Reason,
            ElapsedSeconds = s.ElapsedSeconds,
            KinematicSeconds = s.KinematicSeconds,
            DotsPerSecond = s.DotsPerSecond,
            EtaSeconds = s.EtaSeconds,
            ProfileName = r.ProfileName,
            CalibrationId = r.CalibrationId ?? "",
            CalibrationOverrideBy = r.OverrideBy ?? "",
            CalibrationOverrideReason = r.OverrideReason ?? "",
            TreatmentId = r.TreatmentId ?? "",
            TreatmentSession = (uint)r.TreatmentSessionNumber,
            CreatedAt = Timestamp.FromDateTimeOffset(r.CreatedAt),
            Dots = new DotCounts
            {
                Total = s.Tally.Total,
                Placed = s.Tally.Placed,
                Skipped = s.Tally.Skipped,
                Pending = s.Tally.Pending,
                InDoubt = s.Tally.InDoubt,
                Commanded = s.Tally.Commanded,
            },
        };
        if (s.Checks is { Checked: > 0 } checks)
        {
            proto.DotChecks = new DotCheckCounts { OnTarget = checks.OnTarget, OffTarget = checks.OffTarget, NotSeen = checks.NotSeen };
        }
        if (s.Tracking is { } tv)
        {
            proto.Tracking = new TrackingState
            {
                Source = tv.Source,
                Tracking = tv.IsTracking,
                PoseAgeMs = tv.Gates.PoseAgeMs,
                Quality = tv.Gates.Quality,
                HeadSpeedMmPerS = tv.Gates.HeadSpeedMmPerS,
                Gate = tv.Gates.HoldReason ?? "",
                Holding = tv.Holding,
                HoldReason = tv.HoldReason,
                HoldSeconds = tv.HoldSeconds,
                Holds = tv.Holds,
                LastHoldReason = tv.LastHoldReason,
                PoseMaxAgeMs = tv.PoseMaxAgeMs,
                MinQuality = tv.MinQuality,
                MaxHeadSpeedMmPerS = tv.MaxHeadSpeedMmPerS,
                Retracts = tv.Retracts,
            };
        }
        if (r.StartedAt is { } started) proto.StartedAt = Timestamp.FromDateTimeOffset(started);
        if (r.EndedAt is { } ended) proto.EndedAt = Timestamp.FromDateTimeOffset(ended);
        foreach (var d in s.InDoubt)
        {
            var status = new DotStatus { DotId = d.Dot.DotId, State = DotState.InDoubt, Note = d.Note };
            if (d.TargetMm is { } t) status.Target = new Position { XMm = t.X, YMm = t.Y, ZMm = t.Z };
            proto.InDoubt.Add(status);
        }
        return proto;
    }

    /// <summary>A rigid transform as its rotation matrix, translation and rotation vector (degrees).</summary>
    public static RigidTransformMessage ToProto(RigidTransform t)
    {
        var m = new RigidTransformMessage
        {
            TranslationMm = new Position { XMm = t.Translation.X, YMm = t.Translation.Y, ZMm = t.Translation.Z },
        };
        var v = Rotations.VectorFromMatrix(Rotations.RotationMatrix(t)) * (180 / Math.PI);
        m.RotationVectorDeg = new Position { XMm = v.X, YMm = v.Y, ZMm = v.Z };
        m.Rotation.Add(Rotations.RotationMatrix(t));
        return m;
    }

    /// <summary>
    /// The machine as the controller knows it now. <paramref name="activity"/>, when given, is the activity read
    /// before the status was fetched (see MachineGrpcService.GetStatus); otherwise the one under way now.
    /// </summary>
    public static MachineStatus ToProto(GantryConnection gantry, SafetySupervisor safety, DateTimeOffset now, SafetySwitches? switches = null, ActivityRead? activity = null)
    {
        var client = gantry.Client;
        var status = client?.LastStatus;
        var proto = new MachineStatus
        {
            Connected = gantry.IsConnected,
            // Locked by a hard or soft limit, grbl answers nothing: its ALARM line is the last measurement.
            State = !gantry.IsConnected ? "Disconnected" : client?.LockedByAlarm is not null ? "Alarm" : status?.State ?? "Unknown",
            Homed = gantry.IsHomed,
            LastAlarm = gantry.LastAlarm,
            ProfileName = gantry.Profile.Name,
            Gantry = gantry.Description,
            EstopLatched = safety.IsLatched,
            At = Timestamp.FromDateTimeOffset(now),
            TimeScale = gantry.TimeScale,
            PedalConfigured = switches?.Pedal is not null,
            PedalPressed = switches?.Pedal?.IsEngaged == true,
            PatientSwitchConfigured = switches?.PatientSwitch is not null,
            PatientSwitchPressed = switches?.PatientSwitch is { IsEngaged: false },
            GarbledStatusReports = (ulong)Math.Max(0, gantry.GarbledStatusReports),
            LastGarbledStatus = client?.LastGarbledStatus ?? "",
        };
        if ((activity is { } read ? read.Progress : gantry.Activity.Current) is { } progress)
        {
            proto.Activity = new Contracts.V1.MachineActivity
            {
                Name = progress.Name,
                StepsDone = progress.StepsDone,
                StepsTotal = progress.StepsTotal,
                StartedAt = Timestamp.FromDateTimeOffset(progress.StartedAt),
                Step = progress.Step,
            };
        }
        if (status is not null)
        {
            proto.Position = new Position { XMm = status.MachinePosition.X, YMm = status.MachinePosition.Y, ZMm = status.MachinePosition.Z };
            proto.PlannerBlocksFree = status.PlannerBlocksFree;
            proto.RxBytesFree = status.RxBytesFree;
            proto.FeedMmPerMin = status.FeedMmPerMin;
            proto.NeedleOn = status.SpindleSpeed > 0;
        }
        return proto;
    }

    public static SafetyStatus ToProto(EmergencyStopState s, bool operatorPresent)
    {
        var proto = new SafetyStatus
        {
            EstopLatched = s.Latched,
            EstopSource = s.Source,
            EstopReason = s.Reason,
            OperatorPresent = operatorPresent,
            StopError = s.StopError,
        };
        if (s.At is { } at) proto.EstopAt = Timestamp.FromDateTimeOffset(at);
        proto.StopSteps.Add(s.StopSteps);
        return proto;
    }

    /// <summary>INVALID_ARGUMENT listing the violations in the message and, structured, in a trailer.</summary>
    public static RpcException PlanRejected(PlanValidationResult result)
    {
        var listed = new PlanViolations { Total = result.TotalViolations };
        foreach (var v in result.Violations)
        {
            listed.Violations.Add(new PlanViolation { DotId = v.DotId, Rule = v.Rule, Message = v.Message });
        }
        var lines = result.Violations.Take(10).Select(v => v.Message);
        var more = result.TotalViolations > 10 ? $"; and {result.TotalViolations - 10} more" : "";
        var trailers = new Metadata { { ViolationsTrailer, listed.ToByteArray() } };
        return new RpcException(new Status(StatusCode.InvalidArgument, $"plan rejected ({result.TotalViolations} violation(s)): {string.Join("; ", lines)}{more}"), trailers);
    }

    public static RpcException ToRpc(RefusedException e) => new(new Status(e.Kind switch
    {
        RefusalKind.NotFound => StatusCode.NotFound,
        RefusalKind.InvalidArgument => StatusCode.InvalidArgument,
        _ => StatusCode.FailedPrecondition,
    }, e.Message));

    public static DotLedgerState ToLedger(DotResolution resolution) => resolution switch
    {
        DotResolution.Placed => DotLedgerState.Placed,
        DotResolution.Redo => DotLedgerState.Pending,
        DotResolution.Skip => DotLedgerState.Skipped,
        _ => throw new RpcException(new Status(StatusCode.InvalidArgument, "resolution must be PLACED, REDO or SKIP")),
    };
}

/// <summary>The machine's activity as read at one moment (null progress: none under way then).</summary>
internal readonly record struct ActivityRead(ActivityProgress? Progress);

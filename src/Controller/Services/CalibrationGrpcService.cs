using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Calibration;
using SmpRobot.Controller.Storage;
using SmpRobot.Vision.Calibration;
using CalibrationKind = SmpRobot.Controller.Storage.CalibrationKind;
using CalibrationMessage = SmpRobot.Contracts.V1.Calibration;
using ProtoKind = SmpRobot.Contracts.V1.CalibrationKind;
using SmpRobot.Geometry;

namespace SmpRobot.Controller.Services;

/// <summary>smprobot.v1.CalibrationService: translates and delegates to <see cref="CalibrationProcedures"/>.</summary>
internal sealed class CalibrationGrpcService(CalibrationProcedures procedures, CalibrationGate gate, LedgerStore ledger, TimeProvider time) : CalibrationService.CalibrationServiceBase
{
    public override async Task<CalibrateIntrinsicsReply> CalibrateIntrinsics(CalibrateIntrinsicsRequest request, ServerCallContext context)
    {
        var outcome = await procedures.CalibrateIntrinsicsAsync(request.Camera, request.Views, Callers.StampNotes(context, request.Notes), context.CancellationToken);
        var k = outcome.Result.Intrinsics;
        var reply = new CalibrateIntrinsicsReply
        {
            Calibration = ToProto(outcome.Record),
            RmsPx = outcome.Result.RmsPx,
            WidthPx = k.WidthPx,
            HeightPx = k.HeightPx,
            FxPx = k.FxPx,
            FyPx = k.FyPx,
            CxPx = k.CxPx,
            CyPx = k.CyPx,
            Png = ByteString.CopyFrom(outcome.ViewErrorsPng.Span),
        };
        reply.Distortion.Add(k.Distortion);
        reply.Views.Add(outcome.Result.Views.Select(v => new IntrinsicsView { Name = v.Name, Corners = v.Corners, Used = v.Status == ViewStatus.Used, RmsPx = v.RmsPx, Reason = v.Reason ?? "" }));
        reply.Refused.Add(outcome.Refused);
        reply.CoverageHints.Add(outcome.Result.Coverage.Hints);
        return reply;
    }

    public override async Task<CalibrateGantryReply> CalibrateGantry(CalibrateGantryRequest request, ServerCallContext context)
    {
        var outcome = await procedures.CalibrateGantryAsync(new GantryCalibrationRequest
        {
            Points = request.Points == 0 ? 25 : request.Points,
            Heights = request.Heights == 0 ? 2 : request.Heights,
            Notes = Callers.StampNotes(context, request.Notes),
        }, context.CancellationToken);
        var r = outcome.Result;
        var reply = new CalibrateGantryReply
        {
            Calibration = ToProto(outcome.Record),
            GantryFromCamera = ToProto(r.GantryFromCamera),
            TipInMarkerMm = ToProto(r.TipOffsetInMarkerMm),
            TipOffsetSource = r.TipOffsetSource.ToString(),
            Fit = ToProto(r.MarkerFit.Fit),
            Validation = ToProto(r.MarkerFit.Validation),
            MarkerRotationSpreadDeg = r.MarkerRotationSpreadDeg,
            Seconds = outcome.Seconds,
            Applied = outcome.Applied,
            ResidualsPng = ByteString.CopyFrom(outcome.ResidualsPng.Span),
            HistogramPng = ByteString.CopyFrom(outcome.HistogramPng.Span),
        };
        reply.Stops.Add(r.MarkerFit.Points.Select(p => new CalibrationStop
        {
            Index = p.Index,
            GantryMm = ToProto(p.ToMm),
            ResidualMm = ToProto(p.ResidualMm),
            ErrorMm = p.ErrorMm,
            Validation = p.Role == PointRole.Validation,
            Outlier = p.IsOutlier,
        }));
        reply.Outliers.Add(r.MarkerFit.OutlierIndices);
        reply.TipTouchResidualsMm.Add(r.TipTouchResidualsMm);
        reply.Warnings.Add(r.Warnings.Concat(outcome.Skipped).Distinct());
        return reply;
    }

    public override async Task<CheckDriftReply> CheckDrift(CheckDriftRequest request, ServerCallContext context)
    {
        var outcome = await procedures.CheckDriftAsync(request.ToleranceMm, context.CancellationToken);
        var d = outcome.Result;
        var reply = new CheckDriftReply
        {
            Passed = d.Passed,
            ToleranceMm = d.ToleranceMm,
            Summary = d.Summary,
            CalibrationId = outcome.CalibrationId,
            Stats = ToProto(d.Stats),
            MeanResidualMm = ToProto(d.MeanResidualMm),
            ResidualsPng = ByteString.CopyFrom(outcome.ResidualsPng.Span),
        };
        reply.Points.Add(d.Points.Select(p => new DriftPointResult { GantryMm = ToProto(p.GantryMm), ResidualMm = ToProto(p.ResidualMm), ErrorMm = p.ErrorMm, Passed = p.Passed }));
        return reply;
    }

    public override Task<ListCalibrationsReply> ListCalibrations(ListCalibrationsRequest request, ServerCallContext context)
    {
        if (request.Limit < 0 || request.Limit > 1000) throw new RpcException(new Status(StatusCode.InvalidArgument, "limit must be 0..1000 (0 = 50)"));
        CalibrationKind? kind = request.Kind switch
        {
            ProtoKind.Unspecified => null,
            ProtoKind.Intrinsics => CalibrationKind.Intrinsics,
            ProtoKind.Gantry => CalibrationKind.Gantry,
            _ => throw new RpcException(new Status(StatusCode.InvalidArgument, $"unknown calibration kind {(int)request.Kind}")),
        };
        var current = gate.Current();
        var reply = new ListCalibrationsReply { Camera = gate.CameraId, CurrentGantryId = current?.Id ?? "", CalibrationRequired = gate.Required };
        reply.Calibrations.Add(ledger.ListCalibrations(kind, limit: request.Limit == 0 ? 50 : request.Limit).Select(c => ToProto(c, current?.Id)));
        return Task.FromResult(reply);
    }

    public override Task<CalibrationMessage> GetCalibration(GetCalibrationRequest request, ServerCallContext context)
    {
        var current = gate.Current();
        var record = string.IsNullOrWhiteSpace(request.Id)
            ? current ?? throw new RpcException(new Status(StatusCode.NotFound, $"there is no valid gantry calibration for camera {gate.CameraId}: run smp calibrate gantry"))
            : ledger.FindCalibration(request.Id.Trim()) ?? throw new RpcException(new Status(StatusCode.NotFound, $"no calibration '{request.Id}'"));
        return Task.FromResult(ToProto(record, current?.Id));
    }

    private CalibrationMessage ToProto(CalibrationRecord c, string? currentId = null) => new()
    {
        Id = c.Id,
        Kind = (ProtoKind)(int)c.Kind,
        Camera = c.Camera,
        ProfileName = c.ProfileName,
        CreatedAt = Timestamp.FromDateTimeOffset(c.CreatedAt),
        Method = c.Method,
        Rms = Finite(c.RmsError),
        P95 = Finite(c.P95Error),
        Max = Finite(c.MaxError),
        Points = c.PointCount,
        Notes = c.Notes,
        Valid = c.Valid,
        AgeHours = (time.GetUtcNow() - c.CreatedAt).TotalHours,
        Current = c.Id == (currentId ?? gate.Current()?.Id),
        DataJson = c.DataJson,
    };

    private static double Finite(double v) => double.IsFinite(v) ? v : 0;

    private static Position ToProto(Vec3 v) => new() { XMm = v.X, YMm = v.Y, ZMm = v.Z };

    private static ResidualSummary ToProto(ResidualStats s) => s.Count == 0
        ? new ResidualSummary()
        : new ResidualSummary { Count = s.Count, Rms = s.RmsMm, Mean = s.MeanMm, P95 = s.P95Mm, Max = s.MaxMm, R63 = s.R63Mm, R98 = s.R98Mm };

    private static RigidTransformMessage ToProto(RigidTransform t) => Mapping.ToProto(t);
}

using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Sessions;
using SmpRobot.Controller.Storage;

namespace SmpRobot.Controller.Services;

/// <summary>Thin: treatments across weeks (<see cref="TreatmentManager"/>).</summary>
internal sealed class TreatmentGrpcService(TreatmentManager treatments, SessionReports reports, EarlierDotMatch dotMatch) : TreatmentService.TreatmentServiceBase
{
    /// <summary>Bytes of a report per streamed chunk.</summary>
    public const int ReportChunkBytes = 1 << 20;

    /// <summary>Dots per streamed batch of a treatment's record (well under gRPC's 4 MB message limit).</summary>
    public const int DotsPerBatch = 2000;

    public override Task<TreatmentInfo> StartTreatment(StartTreatmentRequest request, ServerCallContext context)
    {
        var by = Who(context);
        var view = treatments.Start(request.ClientId, request.DesignJson, Bounded.Text(request.HeadModelFile, "head_model_file", Bounded.MaxNameLength), request.HeadModel.ToByteArray(), by);
        return Task.FromResult(ToProto(view));
    }

    public override Task<TreatmentInfo> NextSession(NextSessionRequest request, ServerCallContext context) =>
        Task.FromResult(ToProto(treatments.Next(request.TreatmentId, string.IsNullOrWhiteSpace(request.EarlyReason) ? null : request.EarlyReason, Who(context))));

    public override Task<TreatmentInfo> TouchUp(TreatmentRef request, ServerCallContext context) =>
        Task.FromResult(ToProto(treatments.TouchUp(request.TreatmentId, Who(context))));

    public override Task<TreatmentInfo> GetTreatment(TreatmentRef request, ServerCallContext context) =>
        Task.FromResult(ToProto(treatments.Get(request.TreatmentId)));

    public override Task<ListTreatmentsReply> ListTreatments(ListTreatmentsRequest request, ServerCallContext context)
    {
        var reply = new ListTreatmentsReply();
        reply.Treatments.Add(treatments.List(request.ClientId).Select(t => ToProto(treatments.Get(t.Id))));
        return Task.FromResult(reply);
    }

    public override async Task ListTreatmentDots(TreatmentRef request, IServerStreamWriter<TreatmentDotBatch> responseStream, ServerCallContext context)
    {
        var dots = treatments.Dots(request.TreatmentId);
        foreach (var chunk in dots.Chunk(DotsPerBatch))
        {
            var batch = new TreatmentDotBatch();
            batch.Dots.Add(chunk.Select(ToProto));
            await responseStream.WriteAsync(batch, context.CancellationToken);
        }
    }

    public override Task<DotMatch> MatchEarlierDots(MatchEarlierDotsRequest request, ServerCallContext context)
    {
        var outcome = dotMatch.Match(Bounded.Text(request.SessionId, "session_id", Bounded.MaxIdLength), (int)Math.Min(request.Patch, int.MaxValue));
        var m = outcome.Stored;
        var moved = 0.0;
        foreach (var c in new[] { new Geometry.Vec3(0, 0, 100), new Geometry.Vec3(40, 0, 90), new Geometry.Vec3(0, 40, 90), new Geometry.Vec3(-40, 0, 90), new Geometry.Vec3(0, -40, 90) })
        {
            moved = Math.Max(moved, outcome.HeadFromScalp.Apply(c).DistanceTo(outcome.InitialHeadFromScalp.Apply(c)));
        }
        return Task.FromResult(new DotMatch
        {
            SessionId = m.SessionId,
            Patch = (uint)m.Patch,
            Accepted = m.Accepted,
            Reason = m.Reason,
            Found = m.Found,
            ExpectedInView = m.Expected,
            Matched = m.Matched,
            ResidualRmsMm = double.IsFinite(m.RmsMm) ? m.RmsMm : -1,
            ResidualP95Mm = double.IsFinite(m.P95Mm) ? m.P95Mm : -1,
            RegistrationId = m.RegistrationId ?? "",
            LeftOut = m.LeftOut,
            MovedFromInitialMm = m.Accepted ? moved : 0,
            PicturePng = m.PicturePng is { } png ? ByteString.CopyFrom(png.Span) : ByteString.Empty,
            TouchUp = outcome.TouchUp is { } t ? new Contracts.V1.TouchUpSurvey { Candidates = t.Candidates, NotInView = t.NotInView, Seen = t.Seen, Faded = t.Faded, Missing = t.Missing, Uncertain = t.Uncertain } : null,
        });
    }

    public override Task SessionReport(SessionReportRequest request, IServerStreamWriter<ReportChunk> responseStream, ServerCallContext context) =>
        SendAsync(reports.SessionPdf(Bounded.Text(request.SessionId, "session_id", Bounded.MaxIdLength)), responseStream, context.CancellationToken);

    public override Task TreatmentReport(TreatmentRef request, IServerStreamWriter<ReportChunk> responseStream, ServerCallContext context) =>
        SendAsync(reports.TreatmentPdf(Bounded.Text(request.TreatmentId, "treatment_id", Bounded.MaxIdLength)), responseStream, context.CancellationToken);

    private static async Task SendAsync(byte[] pdf, IServerStreamWriter<ReportChunk> stream, CancellationToken ct)
    {
        for (var offset = 0; offset < pdf.Length; offset += ReportChunkBytes)
        {
            var length = Math.Min(ReportChunkBytes, pdf.Length - offset);
            await stream.WriteAsync(new ReportChunk { Data = ByteString.CopyFrom(pdf, offset, length), Last = offset + length >= pdf.Length }, ct);
        }
    }

    private static string Who(ServerCallContext context)
    {
        var who = Callers.Recorded(context, "");
        return string.IsNullOrEmpty(who) ? Security.CallerIdentity.InsecureLoopback.Name : who;
    }

    internal static TreatmentInfo ToProto(TreatmentView view)
    {
        var t = view.Treatment;
        var info = new TreatmentInfo
        {
            Id = t.Id,
            ClientId = t.ClientId,
            DesignName = t.DesignName,
            DesignSha256 = t.DesignSha256,
            SessionCount = (uint)t.SessionCount,
            CreatedAt = Timestamp.FromDateTimeOffset(t.CreatedAt),
            CreatedBy = t.CreatedBy,
        };
        info.Sessions.Add(view.Sessions.Select(s => new TreatmentSession
        {
            Number = (uint)s.Link.Number,
            TouchUp = s.Link.Kind == TreatmentSessionKind.TouchUp,
            Session = Mapping.ToProto(s.Session),
        }));
        return info;
    }

    internal static TreatmentDot ToProto(TreatmentDotRecord d)
    {
        var dot = new TreatmentDot
        {
            SessionId = d.SessionId,
            SessionNumber = (uint)d.SessionNumber,
            DotId = d.DotId,
            DesignDotId = d.DesignDotId,
            PlannedXMm = d.PlannedS.X,
            PlannedYMm = d.PlannedS.Y,
            PlannedZMm = d.PlannedS.Z,
            Check = d.Check switch
            {
                DotCheckResult.OnTarget => DotCheck.OnTarget,
                DotCheckResult.OffTarget => DotCheck.OffTarget,
                DotCheckResult.NotSeen => DotCheck.NotSeen,
                _ => DotCheck.NotChecked,
            },
            CheckOffsetMm = d.CheckOffsetMm ?? 0,
            State = (DotState)(int)d.State,
            UpdatedAt = Timestamp.FromDateTimeOffset(d.UpdatedAt),
            DepthMm = d.DepthMm,
            Note = d.Note,
            TouchUp = d.Kind == TreatmentSessionKind.TouchUp,
        };
        if (d.MeasuredS is { } m)
        {
            dot.Measured = true;
            dot.MeasuredXMm = m.X;
            dot.MeasuredYMm = m.Y;
            dot.MeasuredZMm = m.Z;
        }
        return dot;
    }
}

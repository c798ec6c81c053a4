using System.Text;
using Grpc.AspNetCore.Server;
using Grpc.Core;

namespace SmpRobot.Controller.Services;

/// <summary>What the HTTP pipeline's own steps (authentication, request checks, the audit) need to know and say about a gRPC call before or around its service.</summary>
internal static class GrpcPipeline
{
    /// <summary>
    /// The path of the method routing chose ("/smprobot.v1.SessionService/Start"), whatever the client's spelling (routing
    /// ignores case and a trailing slash); the request's path when no gRPC method was matched.
    /// </summary>
    public static string MethodPath(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>()?.Method.FullName ?? context.Request.Path.Value ?? "";
    }

    /// <summary>Answers the call itself with a trailers-only gRPC response: HTTP 200, grpc-status and a percent-encoded grpc-message.</summary>
    public static void Refuse(HttpContext context, StatusCode status, string message)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/grpc";
        context.Response.Headers["grpc-status"] = ((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture);
        context.Response.Headers["grpc-message"] = PercentEncode(message);
    }

    /// <summary>grpc-message is percent-encoded (gRPC over HTTP/2: printable ASCII except '%').</summary>
    private static string PercentEncode(string text)
    {
        var sb = new StringBuilder();
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            if (b is >= 0x20 and <= 0x7E && b != (byte)'%') sb.Append((char)b);
            else sb.Append('%').Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }
}

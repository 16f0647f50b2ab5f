// Compatibility shim: mediasoup expects versatica's libsrtp 3.x fork; Debian 12
// has libsrtp 2.5.0 (<srtp2/srtp.h>, int* lengths, in-place protect).
// C++ overloads with the libsrtp3 signatures forward to the libsrtp2 functions.
#ifndef MS_SRTP2_COMPAT_SRTP_H
#define MS_SRTP2_COMPAT_SRTP_H
#include <srtp2/srtp.h>
#ifdef __cplusplus
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>

// Error codes that only exist in libsrtp 3.x (never returned by libsrtp 2.x).
static constexpr srtp_err_status_t srtp_err_status_buffer_small =
  static_cast<srtp_err_status_t>(28);
static constexpr srtp_err_status_t srtp_err_status_cryptex_err =
  static_cast<srtp_err_status_t>(29);

namespace ms_srtp2_compat
{
	using fn2 = srtp_err_status_t (*)(srtp_t, void*, int*);

	inline srtp_err_status_t Run(
	  fn2 fn, srtp_t ctx, const uint8_t* in, size_t inLen, uint8_t* out, size_t* outLen, size_t trailer)
	{
		if (inLen > static_cast<size_t>(INT_MAX) - trailer || *outLen < inLen + trailer)
			return srtp_err_status_buffer_small;
		if (out != in)
			std::memmove(out, in, inLen);
		int len = static_cast<int>(inLen);
		const srtp_err_status_t err = fn(ctx, out, &len);
		if (err == srtp_err_status_ok)
			*outLen = static_cast<size_t>(len);
		return err;
	}

	inline srtp_err_status_t RunInPlace(fn2 fn, srtp_t ctx, void* buf, size_t* len)
	{
		if (*len > static_cast<size_t>(INT_MAX))
			return srtp_err_status_bad_param;
		int l = static_cast<int>(*len);
		const srtp_err_status_t err = fn(ctx, buf, &l);
		if (err == srtp_err_status_ok)
			*len = static_cast<size_t>(l);
		return err;
	}
} // namespace ms_srtp2_compat

#ifndef SRTP_MAX_SRTCP_TRAILER_LEN // libsrtp2: "can write SRTP_MAX_TRAILER_LEN+4"
#define SRTP_MAX_SRTCP_TRAILER_LEN (SRTP_MAX_TRAILER_LEN + 4)
#endif

// libsrtp 3.0 renamed srtp_remove_stream() (ssrc in network byte order in both).
inline srtp_err_status_t srtp_stream_remove(srtp_t session, uint32_t ssrc)
{
	return ::srtp_remove_stream(session, ssrc);
}

// libsrtp 3.0 (mediasoup >= 3.15) API. mki_index ignored: mediasoup never enables MKI.
inline srtp_err_status_t srtp_protect(
  srtp_t ctx, const uint8_t* rtp, size_t rtp_len, uint8_t* srtp, size_t* srtp_len, size_t /*mki_index*/)
{
	return ms_srtp2_compat::Run(::srtp_protect, ctx, rtp, rtp_len, srtp, srtp_len, SRTP_MAX_TRAILER_LEN);
}
inline srtp_err_status_t srtp_unprotect(
  srtp_t ctx, const uint8_t* srtp, size_t srtp_len, uint8_t* rtp, size_t* rtp_len)
{
	return ms_srtp2_compat::Run(::srtp_unprotect, ctx, srtp, srtp_len, rtp, rtp_len, 0);
}
inline srtp_err_status_t srtp_protect_rtcp(
  srtp_t ctx, const uint8_t* rtcp, size_t rtcp_len, uint8_t* srtcp, size_t* srtcp_len, size_t /*mki_index*/)
{
	return ms_srtp2_compat::Run(
	  ::srtp_protect_rtcp, ctx, rtcp, rtcp_len, srtcp, srtcp_len, SRTP_MAX_SRTCP_TRAILER_LEN);
}
inline srtp_err_status_t srtp_unprotect_rtcp(
  srtp_t ctx, const uint8_t* srtcp, size_t srtcp_len, uint8_t* rtcp, size_t* rtcp_len)
{
	return ms_srtp2_compat::Run(::srtp_unprotect_rtcp, ctx, srtcp, srtcp_len, rtcp, rtcp_len, 0);
}

// versatica libsrtp "3.0-alpha" API (mediasoup 3.14.x): in-place, size_t* length.
inline srtp_err_status_t srtp_protect(srtp_t ctx, void* hdr, size_t* len)
{
	return ms_srtp2_compat::RunInPlace(::srtp_protect, ctx, hdr, len);
}
inline srtp_err_status_t srtp_unprotect(srtp_t ctx, void* hdr, size_t* len)
{
	return ms_srtp2_compat::RunInPlace(::srtp_unprotect, ctx, hdr, len);
}
inline srtp_err_status_t srtp_protect_rtcp(srtp_t ctx, void* hdr, size_t* len)
{
	return ms_srtp2_compat::RunInPlace(::srtp_protect_rtcp, ctx, hdr, len);
}
inline srtp_err_status_t srtp_unprotect_rtcp(srtp_t ctx, void* hdr, size_t* len)
{
	return ms_srtp2_compat::RunInPlace(::srtp_unprotect_rtcp, ctx, hdr, len);
}
#endif // __cplusplus
#endif

// Package durl downloads files over HTTP so that the download survives
// anything: the process being killed, the machine losing power, the network
// dropping, the server restarting. A Session is bound to a state folder; a
// Task is one download. Data is written as it arrives and progress is made
// durable beside the transfer, never by pausing it. When a session is opened
// again after a crash, every task that was in flight is found and resumed, or
// handed back as interrupted with its ResumeData, the way NSURLSession reports
// an interrupted background download on the app's next launch.
//
// Every resume is conditional: durl never glues bytes of two versions of a
// remote file together. If the remote changed, the download restarts from
// zero and says so.
package durl

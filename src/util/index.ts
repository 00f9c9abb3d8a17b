export { sendFile, receiveFile, type SendFileOptions, type ReceiveFileOptions, type FileTransferResult } from './file-transfer';
